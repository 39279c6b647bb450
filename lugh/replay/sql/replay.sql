-- Agent runs read back for replay, and a fork recorded in one statement.

-- name: task_project
-- $1 task: the task and its project's name.
SELECT t.*, p.name AS project_name FROM tasks t JOIN projects p ON p.id = t.project_id
WHERE t.id = $1;

-- name: runs
SELECT id, mode, model, system, tools, steps, status FROM agent_runs
WHERE task_id = $1 ORDER BY id;

-- name: messages
-- $1 run ids.
SELECT run_id, seq, role, content FROM agent_messages
WHERE run_id = ANY($1::bigint[]) ORDER BY run_id, seq;

-- name: record_fork
-- $1 the fork (a task just queued in this transaction), $2 branch, $3 worktree path, $4 base
-- commit, $5 mode, $6 model, $7 system prompt, $8 tool names, $9 steps already taken, $10 the
-- conversation so far [{role, content}], $11 the fork's event data, $12 the forked task,
-- $13 that task's event data. The run is left open, so the worker that claims the fork goes
-- on from it as from a run resumed after a restart.
WITH recorded AS (
    UPDATE tasks SET branch = $2, worktree = $3, base_commit = $4, updated_at = now()
    WHERE id = $1 AND status = 'queued'
    RETURNING id
), run AS (
    INSERT INTO agent_runs (task_id, mode, model, system, tools, steps)
    SELECT id, $5, $6, $7, $8, $9 FROM recorded
    RETURNING id
), conversation AS (
    INSERT INTO agent_messages (run_id, seq, role, content)
    SELECT run.id, (m.n - 1)::integer, m.value ->> 'role', m.value -> 'content'
    FROM run, jsonb_array_elements($10::jsonb) WITH ORDINALITY AS m (value, n)
), events AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT e.task_id, e.kind, e.data FROM recorded,
        (VALUES ($1::bigint, 'forked', $11::jsonb), ($12::bigint, 'fork', $13::jsonb))
            AS e (task_id, kind, data)
    RETURNING id, task_id, kind
)
SELECT (SELECT id FROM run) AS run_id,
       (SELECT count(pg_notify('lugh_events', json_build_object(
            'id', id, 'task_id', task_id, 'kind', kind)::text)) FROM events) AS notified;
