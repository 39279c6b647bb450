-- Progress messages: one per run of a task and chat, edited in place at most every interval.

-- name: opened_by
-- $1 task, $2 chat: the `running` event that opened the current message, if any.
SELECT run_event FROM notify_progress WHERE task_id = $1 AND chat_id = $2;

-- name: open
-- $1 task, $2 chat, $3 outbox row of the message, $4 running event, $5 text. A newer run takes
-- the row over (a new message); a replayed older one changes nothing.
INSERT INTO notify_progress (task_id, chat_id, message_row, run_event, last_event, shown)
VALUES ($1, $2, $3, $4, $4, $5)
ON CONFLICT (task_id, chat_id) DO UPDATE
SET message_row = excluded.message_row, run_event = excluded.run_event,
    last_event = excluded.last_event, shown = excluded.shown, shown_at = now(),
    pending = NULL, edits = 0, finished = false
WHERE notify_progress.run_event < excluded.run_event;

-- name: advance
-- $1 task, $2 event, $3 text, $4 finished: the newest state, shown at the next flush. Only
-- forward, and never after the run's message was finished.
UPDATE notify_progress
SET pending = $3, last_event = $2, finished = $4
WHERE task_id = $1 AND NOT finished AND last_event < $2 AND run_event <= $2;

-- name: due
-- Messages with a state to show whose last edit is at least $1 seconds old.
SELECT task_id, chat_id, message_row, run_event, shown, pending, edits, finished
FROM notify_progress
WHERE pending IS NOT NULL AND shown_at <= now() - make_interval(secs => $1)
ORDER BY shown_at
FOR UPDATE SKIP LOCKED;

-- name: shown
-- $1 task, $2 chat, $3 the text queued.
UPDATE notify_progress
SET shown = $3, pending = NULL, shown_at = now(), edits = edits + 1
WHERE task_id = $1 AND chat_id = $2;

-- name: unchanged
UPDATE notify_progress SET pending = NULL WHERE task_id = $1 AND chat_id = $2 AND shown = $3;

-- name: next_due
-- Seconds until the next throttled edit may go out, or NULL when none waits.
-- (Not greatest(0, …): that is 0 when no row waits, and the notifier would poll non-stop.)
SELECT extract(epoch FROM min(shown_at) + make_interval(secs => $1) - now())::float8
FROM notify_progress WHERE pending IS NOT NULL;

-- name: prune
-- Finished messages whose last edit went out a day ago: nothing will edit them again.
DELETE FROM notify_progress
WHERE finished AND pending IS NULL AND shown_at < now() - interval '1 day';
