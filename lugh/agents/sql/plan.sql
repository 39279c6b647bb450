-- Plans and high-risk steps waiting for the owner. A task waits in awaiting_review with one
-- pending approval (kind 'plan' or 'step'); the owner's answer queues it again (or, for a
-- declined plan, rejects it). Each move is one statement, with its event and notifications.

-- name: park
-- $1 task, $2 lease token, $3 kind (plan | step), $4 payload, $5 reason. An approval already
-- pending for the same step (the same tool_use_id) is reused, so a resumed run asks once.
WITH moved AS (
    UPDATE tasks
    SET status = 'awaiting_review', lease_owner = NULL, lease_expires_at = NULL,
        error = NULL, updated_at = now()
    WHERE id = $1 AND lease_token = $2 AND status = 'running'
    RETURNING *
), existing AS (
    SELECT a.id FROM approvals a JOIN moved ON moved.id = a.task_id
    WHERE a.kind = $3 AND a.status = 'pending'
      AND a.payload -> 'tool_use_id' IS NOT DISTINCT FROM $4::jsonb -> 'tool_use_id'
    ORDER BY a.id DESC LIMIT 1
), approval AS (
    INSERT INTO approvals (task_id, kind, payload)
    SELECT id, $3, $4::jsonb FROM moved WHERE NOT EXISTS (SELECT 1 FROM existing)
    RETURNING id
), chosen AS (
    SELECT id FROM approval UNION ALL SELECT id FROM existing
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT moved.id, 'awaiting_review', $4::jsonb || jsonb_build_object(
        'from', 'running', 'reason', $5::text, 'approval', (SELECT id FROM chosen LIMIT 1))
    FROM moved
    RETURNING id, task_id, kind
)
SELECT (SELECT id FROM chosen LIMIT 1) AS approval_id,
       pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified
FROM event;

-- name: pending
-- $1 task: its open plan or step approval, if any.
SELECT a.id, a.kind, a.payload, t.status AS task_status
FROM approvals a JOIN tasks t ON t.id = a.task_id
WHERE a.task_id = $1 AND a.kind IN ('plan', 'step') AND a.status = 'pending'
ORDER BY a.id DESC LIMIT 1;

-- name: approved_plan
SELECT id, payload FROM approvals
WHERE task_id = $1 AND kind = 'plan' AND status = 'approved'
ORDER BY id DESC LIMIT 1;

-- name: step_decision
-- $1 task, $2 tool_use_id: the latest answer about that call ('pending' until there is one).
SELECT status FROM approvals
WHERE task_id = $1 AND kind = 'step' AND payload ->> 'tool_use_id' = $2
ORDER BY id DESC LIMIT 1;

-- name: answer
-- $1 task, $2 approval, $3 answer (approved | rejected), $4 method, $5 the task's next status
-- (queued | rejected), $6 reason. Only from awaiting_review with that approval pending.
-- Attempts start afresh, as after the owner's retry: waiting for an answer was no failure.
WITH answered AS (
    UPDATE approvals SET status = $3::text, method = $4::text, responded_at = now()
    WHERE id = $2 AND task_id = $1 AND status = 'pending'
    RETURNING id, kind
), moved AS (
    UPDATE tasks t
    SET status = $5::text, attempts = 0, run_after = now(), updated_at = now(),
        finished_at = CASE WHEN $5::text = 'rejected' THEN now() END
    FROM answered
    WHERE t.id = $1 AND t.status = 'awaiting_review'
    RETURNING t.*
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT moved.id, moved.status, jsonb_build_object(
        'from', 'awaiting_review', 'reason', $6::text, 'approval', $2::bigint, 'method', $4::text)
    FROM moved
    RETURNING id, task_id, kind
)
SELECT moved.*,
       pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified,
       CASE WHEN moved.status = 'queued' THEN pg_notify('lugh_tasks', moved.id::text)::text
       END AS woke
FROM moved JOIN event ON event.task_id = moved.id;

-- name: task_project
SELECT t.*, p.name AS project FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = $1;

-- name: task_exists
SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1);
