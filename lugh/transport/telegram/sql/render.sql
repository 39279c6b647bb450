-- name: add_buttons
-- One row per button, in order; a button on an approval expires with it (or after $7 seconds).
WITH added AS (
    INSERT INTO telegram_buttons (chat_id, label, action, argument, approval_id, task_id, expires_at)
    SELECT $1, label, action, argument, $5, $6,
           least(now() + make_interval(secs => $7),
                 (SELECT expires_at FROM approvals WHERE id = $5))
    FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS b (label, action, argument, n)
    ORDER BY n
    RETURNING id
)
SELECT array_agg(id ORDER BY id) FROM added

-- name: bind
-- In one statement: the new buttons belong to message $1; for an edit ($6) the buttons it showed
-- before are gone; the message is bound to approval $4 / task $5 when the reply names them.
WITH buttons AS (
    UPDATE telegram_buttons SET outbox_id = $1 WHERE id = ANY ($3::bigint[])
    RETURNING id
), retired AS (
    UPDATE telegram_buttons SET used_at = now()
    WHERE $6::boolean AND outbox_id = $1 AND used_at IS NULL AND id <> ALL ($3::bigint[])
    RETURNING id
), prompt AS (
    INSERT INTO telegram_prompts (outbox_id, chat_id, approval_id, task_id)
    SELECT $1, $2, $4, $5 WHERE $4::bigint IS NOT NULL OR $5::bigint IS NOT NULL
    ON CONFLICT (outbox_id) DO UPDATE
    SET approval_id = coalesce(excluded.approval_id, telegram_prompts.approval_id),
        task_id = coalesce(excluded.task_id, telegram_prompts.task_id)
    RETURNING outbox_id
)
SELECT (SELECT count(*) FROM buttons), (SELECT count(*) FROM retired), (SELECT count(*) FROM prompt)
