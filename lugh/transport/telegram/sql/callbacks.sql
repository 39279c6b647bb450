-- name: button
-- A button of this chat; `live` when unused, unexpired, and its approval (if any) still pending.
SELECT b.id, b.outbox_id, b.action, b.argument, b.used_at,
       b.used_at IS NULL AND b.expires_at > now() AND b.outbox_id IS NOT NULL
         AND (b.approval_id IS NULL OR a.status = 'pending') AS live
FROM telegram_buttons b
LEFT JOIN approvals a ON a.id = b.approval_id
WHERE b.id = $1 AND b.chat_id = $2

-- name: use_keyboard
-- Uses up every live button of the message at once; true when something was live (and, with
-- $2, when that button was one of them). Two presses at once: the second finds nothing.
WITH used AS (
    UPDATE telegram_buttons SET used_at = now()
    WHERE outbox_id = $1 AND used_at IS NULL AND expires_at > now()
    RETURNING id
)
SELECT CASE WHEN $2::bigint IS NULL THEN count(*) > 0
            ELSE bool_or(id = $2::bigint) IS TRUE END
FROM used

-- name: expire_keyboard
UPDATE telegram_buttons SET used_at = now() WHERE outbox_id = $1 AND used_at IS NULL
