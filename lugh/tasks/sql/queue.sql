-- The task queue. Every transition is ONE statement: it moves the task and appends its
-- task_events row, so it is atomic without an explicit transaction and costs one round trip.
-- Each returns its notes (`task_note` for `lugh_tasks`: a task id; `event_note` for `lugh_events`:
-- {"id", "task_id", "kind"}). The rare moves NOTIFY them in the statement itself (never from a
-- trigger); the hot ones, claim and complete, do not: a notifying commit holds a cluster-wide
-- lock until its WAL is flushed, which would serialise every worker's commits behind one another.
-- Their notes are sent after the commit (TaskQueue announces them), and a bus that does not hear
-- NOTIFY (Redis) is told of the others' after the commit too.

-- name: enqueue
-- $1 project, $2 title, $3 body, $4 agent, $5 parent, $6 priority, $7 source, $8 dedupe key,
-- $9 max attempts, $10 delay seconds, $11 options, $12 dependencies, $13 the worker of this
-- process that has a slot reserved for the task (NULL: none), $14 its lease seconds.
-- With a worker, a task that is claimable at once and that no claimable queued task of the same
-- or a higher priority waits ahead of is handed to it: inserted `running`, leased to it (a fresh
-- fencing token, attempt 1), both its events written, and no `lugh_tasks` wake-up; its events
-- are announced just after the commit, as a claim's are (a NOTIFY in the statement made its
-- commit wake the listeners first: 0.23 ms of the hand-off's ~1.8, bench/dispatch.py). Otherwise
-- it is queued and NOTIFYed. The commit stays durable either way: the owner was told it exists.
-- Kept lean, as it is the hand-off's whole cost beyond the commit: $12 comes sorted and without
-- repeats (TaskQueue.enqueue), so it is returned as the task's dependencies; the dependency check
-- is skipped when there are none; each event is its own one-row insert, with no sort and no
-- aggregate (together 0.15 ms of the statement's 1.55, bench/dispatch.py's hand-off).
WITH handoff AS MATERIALIZED (  -- decided once, not in each CASE below
    SELECT $13::text IS NOT NULL AND $10::float8 <= 0 AND NOT $11::jsonb ? 'paused'
       AND (cardinality($12::bigint[]) = 0 OR NOT EXISTS (
           SELECT 1 FROM tasks dep WHERE dep.id = ANY($12::bigint[]) AND dep.status <> 'done'))
       AND NOT EXISTS (
           SELECT 1 FROM tasks t
           WHERE t.status = 'queued' AND t.priority >= $6::smallint AND t.run_after <= now()
             AND NOT EXISTS (
                 SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on_id
                 WHERE d.task_id = t.id AND dep.status <> 'done')) AS handed
), task AS (
    INSERT INTO tasks (project_id, title, body, agent_id, parent_id, priority, source,
                       dedupe_key, max_attempts, run_after, options,
                       status, attempts, lease_token, lease_owner, lease_expires_at, started_at)
    SELECT $1::bigint, $2::text, $3::text, $4::bigint, $5::bigint, $6::smallint, $7::text,
           $8::text, $9::integer,
           now() + make_interval(secs => $10::float8), $11::jsonb,
           CASE WHEN handed THEN 'running' ELSE 'queued' END,
           CASE WHEN handed THEN 1 ELSE 0 END,
           CASE WHEN handed THEN (extract(epoch FROM now()) * 1e6)::bigint ELSE 0 END,
           CASE WHEN handed THEN $13::text END,
           CASE WHEN handed THEN now() + make_interval(secs => $14::float8) END,
           CASE WHEN handed THEN now() END
    FROM handoff
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING *
), deps AS (
    INSERT INTO task_dependencies (task_id, depends_on_id)
    SELECT task.id, d FROM task, unnest($12::bigint[]) AS d
), queued AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, 'queued', jsonb_build_object('source', source, 'priority', priority) FROM task
    RETURNING id
), running AS (  -- reads `queued`, so is written after it: the ids keep the order of the moves
    INSERT INTO task_events (task_id, kind, data)
    SELECT task.id, 'running', jsonb_build_object('from', 'queued', 'attempt', task.attempts,
                                                  'worker', task.lease_owner, 'handed_off', true)
    FROM task, queued WHERE task.status = 'running'
    RETURNING id
), noted AS (
    SELECT task.*, coalesce(running.id, queued.id) AS last_event_id,
           CASE WHEN running.id IS NULL
                THEN json_build_object('id', queued.id, 'task_id', task.id, 'kind', 'queued')::text
                ELSE '[' || json_build_object('id', queued.id, 'task_id', task.id, 'kind', 'queued')
                     || ',' || json_build_object('id', running.id, 'task_id', task.id,
                                                 'kind', 'running') || ']' END AS event_note
    FROM task CROSS JOIN queued LEFT JOIN running ON true
)
SELECT noted.*, $12::bigint[] AS depends_on,
       CASE WHEN status = 'queued' THEN id::text END AS task_note,
       CASE WHEN status = 'queued' THEN pg_notify('lugh_tasks', id::text)::text END AS notified_task,
       CASE WHEN status = 'queued' THEN pg_notify('lugh_events', event_note)::text END AS notified
FROM noted;

-- name: by_dedupe_key
SELECT t.*, ARRAY(SELECT depends_on_id FROM task_dependencies
                  WHERE task_id = t.id ORDER BY 1) AS depends_on
FROM tasks t WHERE t.dedupe_key = $1;

-- name: claim
-- $1 worker, $2 lease seconds, $3 how many. Highest priority first, then oldest; a task is
-- claimable when queued, due, and every task it depends on is done.
-- Committed without waiting for the WAL flush: a claim lost in a crash leaves its task queued,
-- which is where it was. So that a lost claim's token is never handed out again (two workers
-- would hold one fencing token), a token is at least the claim time in microseconds.
WITH next AS (
    SELECT t.id FROM tasks t
    WHERE t.status = 'queued' AND t.run_after <= now()
      AND NOT EXISTS (
          SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on_id
          WHERE d.task_id = t.id AND dep.status <> 'done')
    ORDER BY t.priority DESC, t.id
    LIMIT $3
    FOR UPDATE OF t SKIP LOCKED
), claimed AS (
    UPDATE tasks t
    SET status = 'running', attempts = t.attempts + 1,
        lease_token = greatest(t.lease_token + 1, (extract(epoch FROM now()) * 1e6)::bigint),
        lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::float8),
        started_at = now(), updated_at = now()
    FROM next WHERE t.id = next.id
    RETURNING t.*
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, 'running', jsonb_build_object('from', 'queued', 'attempt', attempts,
                                             'worker', lease_owner)
    FROM claimed
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT claimed.*, event.note AS event_note,
       set_config('synchronous_commit', 'off', true) AS synchronous_commit
FROM claimed JOIN event ON event.task_id = claimed.id
ORDER BY claimed.priority DESC, claimed.id;

-- name: next_due
-- Seconds until the earliest queued task whose dependencies are done becomes due (≤ 0: due now,
-- e.g. it became due since the last claim looked, or another worker is claiming it).
SELECT extract(epoch FROM min(t.run_after) - now())::float8
FROM tasks t
WHERE t.status = 'queued'
  AND NOT EXISTS (
      SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on_id
      WHERE d.task_id = t.id AND dep.status <> 'done');

-- name: heartbeat
-- Extend leases: $1 tasks, $2 their tokens (pairwise), $3 lease seconds. Returns those still held.
UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $3::float8)
FROM unnest($1::bigint[], $2::bigint[]) AS lease(id, token)
WHERE t.id = lease.id AND t.lease_token = lease.token AND t.status = 'running'
RETURNING t.id, t.lease_token;

-- name: complete
-- Finish running tasks: $1 tasks, $2 tokens, $3 statuses (awaiting_review | done | failed),
-- $4 results (json text), $5 errors, pairwise. Each changes nothing unless its token is the
-- current lease's; one statement (one commit, one WAL flush) for what a pool finished at once.
WITH outcome AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])
        AS o(id, token, status, result, error)
), finished AS (
    UPDATE tasks t
    SET status = o.status, result = coalesce(o.result::jsonb, t.result), error = o.error,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
        finished_at = CASE WHEN o.status IN ('done', 'failed') THEN now() END
    FROM outcome o
    WHERE t.id = o.id AND t.lease_token = o.token AND t.status = 'running'
    RETURNING t.id, t.lease_token, t.status, t.attempts, t.error
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, status, jsonb_strip_nulls(jsonb_build_object(
        'from', 'running', 'attempt', attempts, 'error', error))
    FROM finished
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT finished.id, finished.lease_token, event.note AS event_note, woke.note AS task_note
FROM finished JOIN event ON event.task_id = finished.id
LEFT JOIN LATERAL (  -- a dependent may have become claimable
    SELECT d.task_id::text AS note FROM task_dependencies d
    WHERE finished.status = 'done' AND d.depends_on_id = finished.id LIMIT 1
) woke ON true;

-- name: fail_attempt
-- $1 task, $2 token, $3 error, $4 may retry, $5 backoff base s, $6 backoff cap s, $7 jitter.
-- Requeued after base·2^(attempt-1) seconds (capped, ± jitter) until max_attempts, then failed.
WITH failed AS (
    UPDATE tasks
    SET status = CASE WHEN $4 AND attempts < max_attempts THEN 'queued' ELSE 'failed' END,
        run_after = CASE WHEN $4 AND attempts < max_attempts
            THEN now() + make_interval(secs =>
                least($6::float8, $5::float8 * power(2, attempts - 1))
                * (1 - $7::float8 + 2 * $7::float8 * random()))
            ELSE run_after END,
        finished_at = CASE WHEN $4 AND attempts < max_attempts THEN NULL ELSE now() END,
        error = $3, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    WHERE id = $1 AND lease_token = $2 AND status = 'running'
    RETURNING *
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, status, jsonb_build_object(
        'from', 'running', 'reason', 'attempt_failed', 'attempt', attempts, 'error', error,
        'retry_in_s', CASE WHEN status = 'queued'
                           THEN round(extract(epoch FROM run_after - now()), 3) END)
    FROM failed
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT failed.*,
       event.note AS event_note, pg_notify('lugh_events', event.note)::text AS notified,
       -- workers wake to learn when it is due
       CASE WHEN failed.status = 'queued' THEN failed.id::text END AS task_note,
       CASE WHEN failed.status = 'queued'
            THEN pg_notify('lugh_tasks', failed.id::text)::text END AS notified_task
FROM failed JOIN event ON event.task_id = failed.id;

-- name: release
-- A worker lets go of a task it will not finish (shutdown): back to the queue at once, and the
-- attempt is not counted against the task.
WITH released AS (
    UPDATE tasks
    SET status = 'queued', attempts = greatest(attempts - 1, 0), run_after = now(),
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    WHERE id = $1 AND lease_token = $2 AND status = 'running'
    RETURNING *
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, 'queued', jsonb_build_object('from', 'running', 'reason', 'released') FROM released
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT released.*,
       released.id::text AS task_note,
       pg_notify('lugh_tasks', released.id::text)::text AS notified_task,
       event.note AS event_note, pg_notify('lugh_events', event.note)::text AS notified
FROM released JOIN event ON event.task_id = released.id;

-- name: requeue_expired
-- $1 backoff base s, $2 backoff cap s, $3 jitter. Leases whose worker stopped heartbeating.
WITH expired AS (
    SELECT id, lease_owner FROM tasks
    WHERE status = 'running' AND lease_expires_at < now()
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE tasks t
    SET status = CASE WHEN t.attempts < t.max_attempts THEN 'queued' ELSE 'failed' END,
        run_after = CASE WHEN t.attempts < t.max_attempts
            THEN now() + make_interval(secs =>
                least($2::float8, $1::float8 * power(2, t.attempts - 1))
                * (1 - $3::float8 + 2 * $3::float8 * random()))
            ELSE t.run_after END,
        finished_at = CASE WHEN t.attempts < t.max_attempts THEN NULL ELSE now() END,
        error = format('Worker %s stopped renewing its lease during attempt %s.',
                       expired.lease_owner, t.attempts),
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM expired WHERE t.id = expired.id
    RETURNING t.*, expired.lease_owner AS previous_owner
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, status, jsonb_build_object(
        'from', 'running', 'reason', 'lease_expired', 'worker', previous_owner,
        'attempt', attempts, 'error', error,
        'retry_in_s', CASE WHEN status = 'queued'
                           THEN round(extract(epoch FROM run_after - now()), 3) END)
    FROM moved
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT moved.*,
       event.note AS event_note, pg_notify('lugh_events', event.note)::text AS notified,
       CASE WHEN moved.status = 'queued' THEN moved.id::text END AS task_note,
       CASE WHEN moved.status = 'queued'
            THEN pg_notify('lugh_tasks', moved.id::text)::text END AS notified_task
FROM moved JOIN event ON event.task_id = moved.id
ORDER BY moved.id;

-- name: move
-- The owner's moves (cancel, retry, approve, reject): $1 task, $2 statuses it may move from,
-- $3 the new status, $4 extra event data, $5 result. A retry starts the attempts afresh.
WITH old AS (
    SELECT id, status FROM tasks WHERE id = $1 FOR UPDATE
), moved AS (
    UPDATE tasks t
    SET status = $3::text,
        attempts = CASE WHEN $3::text = 'queued' THEN 0 ELSE t.attempts END,
        run_after = CASE WHEN $3::text = 'queued' THEN now() ELSE t.run_after END,
        error = CASE WHEN $3::text = 'queued' THEN NULL ELSE t.error END,
        result = coalesce($5::jsonb, t.result),
        finished_at = CASE WHEN $3::text IN ('done', 'rejected', 'failed', 'cancelled')
                           THEN now() END,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM old WHERE t.id = old.id AND old.status = ANY($2::text[])
    RETURNING t.*, old.status AS previous
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, status, jsonb_build_object('from', previous) || $4::jsonb FROM moved
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT moved.*,
       ARRAY(SELECT depends_on_id FROM task_dependencies
             WHERE task_id = moved.id ORDER BY 1) AS depends_on,
       event.note AS event_note, pg_notify('lugh_events', event.note)::text AS notified,
       coalesce(CASE WHEN moved.status = 'queued' THEN moved.id::text END, woke.note) AS task_note,
       CASE WHEN moved.status = 'queued'
            THEN pg_notify('lugh_tasks', moved.id::text)::text END AS notified_task,
       CASE WHEN woke.note IS NOT NULL THEN pg_notify('lugh_tasks', woke.note)::text END AS woke
FROM moved JOIN event ON event.task_id = moved.id
LEFT JOIN LATERAL (
    SELECT d.task_id::text AS note FROM task_dependencies d
    WHERE moved.status = 'done' AND d.depends_on_id = moved.id LIMIT 1
) woke ON true;

-- name: get
SELECT t.*, ARRAY(SELECT depends_on_id FROM task_dependencies
                  WHERE task_id = t.id ORDER BY 1) AS depends_on
FROM tasks t WHERE t.id = $1;

-- name: list
-- $1 project, $2 statuses, $3 agent, $4 parent, $5 before id, $6 limit (each filter optional).
SELECT t.*, ARRAY(SELECT depends_on_id FROM task_dependencies
                  WHERE task_id = t.id ORDER BY 1) AS depends_on
FROM tasks t
WHERE ($1::bigint IS NULL OR t.project_id = $1)
  AND ($2::text[] IS NULL OR t.status = ANY($2))
  AND ($3::bigint IS NULL OR t.agent_id = $3)
  AND ($4::bigint IS NULL OR t.parent_id = $4)
  AND ($5::bigint IS NULL OR t.id < $5)
ORDER BY t.id DESC
LIMIT $6;

-- name: notify
-- Send notes after the change they announce has committed: $1 channels, $2 payloads, pairwise.
SELECT pg_notify(note.channel, note.payload)
FROM unnest($1::text[], $2::text[]) AS note(channel, payload);

-- name: adjust
-- The owner's nudges that are not moves: $2 'raise' (priority + 1, for an open task), 'pause'
-- (a queued task is held: not due until resumed) or 'resume'. NULL when it does not apply.
WITH changed AS (
    UPDATE tasks t
    SET priority = CASE WHEN $2::text = 'raise' THEN least(t.priority + 1, 32767) ELSE t.priority END,
        run_after = CASE $2::text WHEN 'pause' THEN 'infinity'::timestamptz
                                  WHEN 'resume' THEN now() ELSE t.run_after END,
        options = CASE $2::text WHEN 'pause' THEN t.options || '{"paused": true}'
                                WHEN 'resume' THEN t.options - 'paused' ELSE t.options END,
        updated_at = now()
    WHERE t.id = $1
      AND CASE $2::text
          WHEN 'raise' THEN t.status IN ('queued', 'running', 'awaiting_review')
          WHEN 'pause' THEN t.status = 'queued' AND NOT t.options ? 'paused'
          ELSE t.status = 'queued' AND t.options ? 'paused' END
    RETURNING t.*
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, CASE $2::text WHEN 'raise' THEN 'priority_raised' WHEN 'pause' THEN 'paused'
                             ELSE 'resumed' END,
           jsonb_build_object('priority', priority)
    FROM changed
    RETURNING id, task_id, kind,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT changed.*,
       ARRAY(SELECT depends_on_id FROM task_dependencies
             WHERE task_id = changed.id ORDER BY 1) AS depends_on,
       event.note AS event_note, pg_notify('lugh_events', event.note)::text AS notified,
       CASE WHEN $2::text = 'resume' THEN changed.id::text END AS task_note,
       CASE WHEN $2::text = 'resume' THEN pg_notify('lugh_tasks', changed.id::text)::text END
           AS notified_task
FROM changed JOIN event ON event.task_id = changed.id;
