-- The events bus over task_events. A subscriber's position is a snapshot, not an id: ids are
-- taken before commit, so a lower id can become visible after a higher one; "visible now but not
-- in my last snapshot" is exact.

-- name: publish
-- Nothing when task $1 does not exist (task_events has no foreign key: see migration 0010).
WITH event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT $1, $2, $3::jsonb WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1)
    RETURNING id, task_id, kind, data, created_at,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT event.id, event.task_id, event.kind, event.data, event.created_at, event.note AS event_note,
       pg_notify('lugh_events', event.note)::text AS notified
FROM event;

-- name: publish_fenced
-- Only while the task runs under lease token $4: a worker that lost its lease stays silent.
WITH event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT $1, $2, $3::jsonb
    WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND lease_token = $4 AND status = 'running')
    RETURNING id, task_id, kind, data, created_at,
              json_build_object('id', id, 'task_id', task_id, 'kind', kind)::text AS note
)
SELECT event.id, event.task_id, event.kind, event.data, event.created_at, event.note AS event_note,
       pg_notify('lugh_events', event.note)::text AS notified
FROM event;

-- name: read_since
-- $1 after id, $2 task (optional), $3 limit.
SELECT id, task_id, kind, data, created_at FROM task_events
WHERE id > $1 AND ($2::bigint IS NULL OR task_id = $2)
ORDER BY id LIMIT $3;

-- name: snapshot
SELECT pg_current_snapshot()::text;

-- name: visible_in
-- Replay: events after id $1 that were visible in snapshot $2, a page at a time.
SELECT id, task_id, kind, data, created_at FROM task_events
WHERE id > $1 AND ($3::bigint IS NULL OR task_id = $3)
  AND pg_visible_in_snapshot(tx, $2::text::pg_snapshot)
ORDER BY id LIMIT $4;

-- name: visible_since
-- Events visible now that were not in snapshot $1, with the snapshot they were read under.
SELECT now_visible.snapshot, e.id, e.task_id, e.kind, e.data, e.created_at
FROM (SELECT pg_current_snapshot()::text AS snapshot) AS now_visible
LEFT JOIN LATERAL (
    SELECT id, task_id, kind, data, created_at FROM task_events
    WHERE tx >= pg_snapshot_xmin($1::text::pg_snapshot)
      AND NOT pg_visible_in_snapshot(tx, $1::text::pg_snapshot)
      AND ($2::bigint IS NULL OR task_id = $2)
) AS e ON true
ORDER BY e.id;

-- name: visible_between
-- Events visible in snapshot $2 and not in snapshot $1, in (transaction, id) order after
-- ($3, $4), $5 at most: what became visible between two reads, a page at a time. Each page starts
-- on task_events_by_tx where the last one ended.
SELECT id, task_id, kind, data, created_at, tx::text AS tx FROM task_events
WHERE tx >= greatest(pg_snapshot_xmin($1::text::pg_snapshot), $3::text::xid8)
  AND (tx, id) > ($3::text::xid8, $4::bigint)
  AND NOT pg_visible_in_snapshot(tx, $1::text::pg_snapshot)
  AND pg_visible_in_snapshot(tx, $2::text::pg_snapshot)
ORDER BY tx, id
LIMIT $5;

-- name: latest_of_task
-- The newest $2 events of task $1, returned oldest first.
SELECT * FROM (
    SELECT id, task_id, kind, data, created_at FROM task_events
    WHERE task_id = $1 ORDER BY id DESC LIMIT $2
) newest ORDER BY id;
