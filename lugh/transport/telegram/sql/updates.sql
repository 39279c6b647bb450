-- name: first_time
-- True when this update id is new (and records it); NULL when it was handled before.
INSERT INTO telegram_updates (update_id) VALUES ($1)
ON CONFLICT (update_id) DO NOTHING
RETURNING true

-- name: forget_old
-- Telegram never sends an update again after a week; older ids need not be kept.
DELETE FROM telegram_updates WHERE received_at < now() - interval '30 days'
