-- name: prompt
-- The binding of the message the owner reacted to (Telegram names it by its own message id).
SELECT p.outbox_id, p.approval_id, p.task_id, a.kind AS approval_kind, a.status AS approval_status
FROM outbox o
JOIN telegram_prompts p ON p.outbox_id = o.id
LEFT JOIN approvals a ON a.id = p.approval_id
WHERE o.chat_id = $1 AND o.sent_message_id = $2
ORDER BY o.id
LIMIT 1
