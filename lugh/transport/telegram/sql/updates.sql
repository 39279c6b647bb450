-- name: first_time
-- True when this update id is new (and records it); NULL when it was handled before. Committed
-- without waiting for its WAL flush (see updates.py for why that keeps "at most once").
INSERT INTO telegram_updates (update_id)
SELECT $1 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick
ON CONFLICT (update_id) DO NOTHING
RETURNING true

-- name: forget_old
-- Telegram never sends an update again after a week; older ids need not be kept.
DELETE FROM telegram_updates WHERE received_at < now() - interval '30 days'
