-- Agent runs and their conversations. Every write names the lease token it runs under and
-- changes nothing once that lease is gone, so a worker that lost its task cannot write over
-- the run its successor is continuing.

-- name: open_run
SELECT * FROM agent_runs WHERE task_id = $1 AND status = 'open';

-- name: messages
SELECT seq, role, content FROM agent_messages WHERE run_id = $1 ORDER BY seq;

-- name: create_run
-- $1 task, $2 lease token, $3 mode, $4 model, $5 system prompt, $6 tool names, $7 first message
-- content. No row when the lease is gone or another run of the task is open.
WITH run AS (
    INSERT INTO agent_runs (task_id, mode, model, system, tools)
    SELECT $1, $3, $4, $5, $6
    WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND lease_token = $2 AND status = 'running')
    ON CONFLICT (task_id) WHERE status = 'open' DO NOTHING
    RETURNING *
), first AS (
    INSERT INTO agent_messages (run_id, seq, role, content)
    SELECT id, 0, 'user', $7::jsonb FROM run
)
SELECT * FROM run;

-- name: save
-- $1 run, $2 lease token, $3 messages [{seq, role, content}] (a seq already saved is replaced),
-- $4 spent {steps, usage, cost_usd, elapsed_s}, $5 events [{kind, data}] for the audit trail,
-- $6 the run's new status (NULL: still open), $7 its outcome. run_id is NULL when the lease or
-- the run is no longer this worker's, and then nothing was written.
-- Committed without waiting for the WAL flush (a third of a step's overhead on a slow disk): a
-- crash of Lugh loses nothing, a crash of Postgres itself at most the last fraction of a second,
-- and then the resumed run does those steps again. A later synchronous commit (the task's own
-- moves) flushes these too, so they are never lost after the task moved on.
WITH quick AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
), fenced AS (
    SELECT r.id, r.task_id FROM agent_runs r JOIN tasks t ON t.id = r.task_id, quick
    WHERE r.id = $1 AND r.status = 'open' AND t.lease_token = $2 AND t.status = 'running'
    FOR UPDATE OF r
), written AS (
    INSERT INTO agent_messages (run_id, seq, role, content)
    SELECT fenced.id, (m ->> 'seq')::integer, m ->> 'role', m -> 'content'
    FROM fenced, jsonb_array_elements($3::jsonb) AS m
    ON CONFLICT (run_id, seq) DO UPDATE SET role = excluded.role, content = excluded.content
), counted AS (
    UPDATE agent_runs r
    SET steps = ($4::jsonb ->> 'steps')::integer, usage = $4::jsonb -> 'usage',
        cost_usd = ($4::jsonb ->> 'cost_usd')::float8,
        elapsed_s = ($4::jsonb ->> 'elapsed_s')::float8,
        status = coalesce($6::text, r.status), outcome = coalesce($7::jsonb, r.outcome),
        updated_at = now()
    FROM fenced
    WHERE r.id = fenced.id
    RETURNING r.id
), events AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT fenced.task_id, e.value ->> 'kind', e.value -> 'data'
    FROM fenced, jsonb_array_elements($5::jsonb) WITH ORDINALITY AS e (value, n)
    ORDER BY e.n
    RETURNING id, task_id, kind
)
SELECT (SELECT id FROM counted) AS run_id,
       (SELECT count(pg_notify('lugh_events', json_build_object(
            'id', id, 'task_id', task_id, 'kind', kind)::text)) FROM events) AS notified;

-- name: latest_run
-- $1 task, $2 mode: the task's newest run of that mode, whatever its status.
SELECT * FROM agent_runs WHERE task_id = $1 AND mode = $2 ORDER BY id DESC LIMIT 1;

-- name: task_status_under_lease
-- $1 task, $2 lease token: its status while that lease is current, else no row.
SELECT status FROM tasks WHERE id = $1 AND lease_token = $2;
