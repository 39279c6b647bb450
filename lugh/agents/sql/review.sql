-- Review and merge. Like the queue's, each move is one statement that changes the task, answers
-- or opens its approval, appends the task_events row and notifies `lugh_events` (and
-- `lugh_tasks` when the task is queued again or done). TaskQueue's own moves cannot open or
-- answer an approval in the same transaction, hence these.

-- name: task_for_review
SELECT t.*, p.name AS project, coalesce(a.name, 'default') AS agent
FROM tasks t
JOIN projects p ON p.id = t.project_id
LEFT JOIN agents a ON a.id = t.agent_id
WHERE t.id = $1;

-- name: lock_task
-- Held while the merge runs: a second approval of the same task waits here, then finds it done.
SELECT t.*, p.name AS project
FROM tasks t JOIN projects p ON p.id = t.project_id
WHERE t.id = $1
FOR UPDATE OF t;

-- name: pending_review
SELECT id, payload FROM approvals
WHERE task_id = $1 AND kind = 'review' AND status = 'pending'
ORDER BY id DESC LIMIT 1
FOR UPDATE;

-- name: latest_review
SELECT id, status, method, payload FROM approvals
WHERE task_id = $1 AND kind = 'review'
ORDER BY id DESC LIMIT 1;

-- name: to_review
-- $1 task, $2 lease token, $3 result, $4 approval payload. Only from running, under that lease.
WITH moved AS (
    UPDATE tasks
    SET status = 'awaiting_review', result = $3::jsonb, error = NULL,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    WHERE id = $1 AND lease_token = $2 AND status = 'running'
    RETURNING *
), superseded AS (
    UPDATE approvals SET status = 'cancelled', responded_at = now()
    WHERE task_id IN (SELECT id FROM moved) AND kind = 'review' AND status = 'pending'
), approval AS (
    INSERT INTO approvals (task_id, kind, payload)
    SELECT id, 'review', $4::jsonb FROM moved
    RETURNING id, task_id
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT moved.id, 'awaiting_review', jsonb_build_object(
        'from', 'running', 'attempt', moved.attempts, 'approval', approval.id,
        'diff', $4::jsonb -> 'summary')
    FROM moved JOIN approval ON approval.task_id = moved.id
    RETURNING id, task_id, kind
)
SELECT moved.*, approval.id AS approval_id,
       pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified
FROM moved
JOIN approval ON approval.task_id = moved.id
JOIN event ON event.task_id = moved.id;

-- name: answer_review
-- $1 task, $2 approval, $3 'approved' (task → done) or 'rejected' (task → rejected), $4 method,
-- $5 object merged into the task's result, $6 extra event data.
WITH answered AS (
    UPDATE approvals SET status = $3::text, method = $4::text, responded_at = now()
    WHERE id = $2 AND task_id = $1 AND status = 'pending'
    RETURNING id
), moved AS (
    UPDATE tasks t
    SET status = CASE $3::text WHEN 'approved' THEN 'done' ELSE 'rejected' END,
        result = (CASE WHEN jsonb_typeof(t.result) = 'object' THEN t.result ELSE '{}' END)
                 || $5::jsonb,
        finished_at = now(), updated_at = now()
    FROM answered
    WHERE t.id = $1 AND t.status = 'awaiting_review'
    RETURNING t.*
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, status, jsonb_build_object(
        'from', 'awaiting_review', 'approval', $2::bigint, 'method', $4::text) || $6::jsonb
    FROM moved
    RETURNING id, task_id, kind
)
SELECT moved.*,
       pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified,
       CASE WHEN moved.status = 'done' THEN (
           SELECT pg_notify('lugh_tasks', d.task_id::text)::text
           FROM task_dependencies d WHERE d.depends_on_id = moved.id LIMIT 1) END AS woke
FROM moved JOIN event ON event.task_id = moved.id;

-- name: note_conflict
-- $1 task, $2 the merge attempt. The task stays in review; its result says what conflicted.
WITH noted AS (
    UPDATE tasks t
    SET result = (CASE WHEN jsonb_typeof(t.result) = 'object' THEN t.result ELSE '{}' END)
                 || jsonb_build_object('merge', $2::jsonb),
        updated_at = now()
    WHERE t.id = $1 AND t.status = 'awaiting_review'
    RETURNING t.id
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, 'merge_conflict', $2::jsonb FROM noted
    RETURNING id, task_id, kind
)
SELECT pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified
FROM event;

-- name: retry
-- $1 task, $2 the owner's feedback ('' for none), $3 method, $4 whether the worktree was
-- discarded (a fresh start), $5 the status it comes from. Attempts start afresh, as in the queue.
WITH answered AS (
    UPDATE approvals SET status = 'cancelled', method = $3::text, responded_at = now()
    WHERE task_id = $1 AND kind = 'review' AND status = 'pending'
    RETURNING id
), moved AS (
    UPDATE tasks t
    SET status = 'queued', attempts = 0, run_after = now(), error = NULL, finished_at = NULL,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
        body = CASE WHEN $2::text = '' THEN t.body
                    ELSE CASE WHEN t.body = '' THEN '' ELSE t.body || E'\n\n' END
                         || 'Feedback from the owner: ' || $2::text END,
        options = CASE WHEN $2::text = '' THEN t.options
                       ELSE t.options || jsonb_build_object('feedback',
                           (CASE WHEN jsonb_typeof(t.options -> 'feedback') = 'array'
                                 THEN t.options -> 'feedback' ELSE '[]' END)
                           || to_jsonb($2::text)) END,
        worktree = CASE WHEN $4::boolean THEN NULL ELSE t.worktree END
    WHERE t.id = $1 AND t.status = $5::text
    RETURNING t.*
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, 'queued', jsonb_strip_nulls(jsonb_build_object(
        'from', $5::text, 'reason', 'retry', 'feedback', nullif($2::text, ''),
        'fresh', $4::boolean, 'approval', (SELECT max(id) FROM answered), 'method', $3::text))
    FROM moved
    RETURNING id, task_id, kind
)
SELECT moved.*,
       pg_notify('lugh_tasks', moved.id::text)::text AS notified_task,
       pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified
FROM moved JOIN event ON event.task_id = moved.id;
