-- The notifier's cursor over task_events: a snapshot, so events committed out of id order are
-- neither missed nor repeated (see lugh/tasks/sql/events.sql).

-- name: cursor
SELECT snapshot, reading_to, read_after_tx::text AS read_after_tx, read_after_id
FROM notify_cursors WHERE name = $1;

-- name: start_cursor
-- $1 name: a new cursor starts now (the history before it is not announced).
INSERT INTO notify_cursors (name, snapshot) VALUES ($1, pg_current_snapshot()::text)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING snapshot, reading_to, read_after_tx::text AS read_after_tx, read_after_id;

-- name: save_cursor
-- $1 name, $2 snapshot, $3 the newest event id handled; during a paged read, $4 the snapshot it
-- reads up to and ($5, $6) the (transaction, event id) its pages have reached (NULLs: none).
UPDATE notify_cursors
SET snapshot = $2, last_event_id = greatest(last_event_id, $3), reading_to = $4,
    read_after_tx = $5::text::xid8, read_after_id = $6, updated_at = now()
WHERE name = $1;
