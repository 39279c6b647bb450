-- name: enqueue
-- The parts of one message, in order; the last part carries the dedupe key itself, earlier
-- parts the key with `#<n>`, so a repeated enqueue inserts nothing and finds the last part.
WITH inserted AS (
    INSERT INTO outbox (chat_id, method, payload, priority, dedupe_key)
    SELECT $1, $2, part::jsonb, $4,
           CASE WHEN $5::text IS NULL THEN NULL
                WHEN n = cardinality($3::text[]) THEN $5::text
                ELSE $5::text || '#' || n END
    FROM unnest($3::text[]) WITH ORDINALITY AS parts (part, n)
    ORDER BY n
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, chat_id
)
SELECT max(id) AS id, count(pg_notify('lugh_outbox', chat_id::text)::text) AS notified
FROM inserted

-- name: by_dedupe_key
SELECT id FROM outbox WHERE dedupe_key = $1

-- name: claim
-- The oldest unfinished row of each chat, when it is due (a `sending` row is due once its lease
-- ran out: its sender died). Chats this sender is already sending to are left out; the status
-- and lease are re-checked on the locked row, so two senders never claim the same one.
WITH heads AS (
    SELECT DISTINCT ON (chat_id) id
    FROM outbox
    WHERE status IN ('pending', 'sending')
    ORDER BY chat_id, id
), due AS (
    SELECT o.id
    FROM outbox o JOIN heads USING (id)
    WHERE o.status IN ('pending', 'sending') AND o.not_before <= now()
      AND o.chat_id <> ALL ($1::bigint[])
    ORDER BY CASE o.priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END,
             o.id
    LIMIT $2
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox SET status = 'sending', attempts = attempts + 1,
                  not_before = now() + make_interval(secs => $3)
FROM due WHERE outbox.id = due.id
RETURNING outbox.id, outbox.chat_id, outbox.method, outbox.payload::text AS payload,
          outbox.attempts, outbox.status

-- name: seconds_to_next_due
-- Only each chat's oldest row counts: the rows behind it wait for it, whatever their not_before.
-- NULL when nothing waits (not greatest(0, …): that is 0 for no rows, and the sender would poll
-- the table every millisecond while idle); a negative value means due now.
SELECT extract(epoch FROM min(not_before) - now())::float8
FROM (
    SELECT DISTINCT ON (chat_id) chat_id, not_before
    FROM outbox
    WHERE status IN ('pending', 'sending')
    ORDER BY chat_id, id
) AS heads
WHERE chat_id <> ALL ($1::bigint[])

-- name: mark_sent
UPDATE outbox SET status = 'sent', sent_message_id = $2, sent_at = now(), error = $3
WHERE id = $1

-- name: set_message_id
-- An edited message that had to be sent anew: later edits of `id` go to the new message.
UPDATE outbox SET sent_message_id = $2 WHERE id = $1

-- name: reschedule
UPDATE outbox SET status = 'pending', not_before = now() + make_interval(secs => $2), error = $3
WHERE id = $1

-- name: mark_failed
UPDATE outbox SET status = 'failed', error = $2 WHERE id = $1

-- name: target
SELECT status, sent_message_id FROM outbox WHERE id = $1

-- name: superseded
-- A later edit of the same message is already queued: this one need not be sent.
SELECT EXISTS (
    SELECT 1 FROM outbox
    WHERE chat_id = $1 AND id > $2 AND status = 'pending' AND method = $3
      AND payload ->> 'edit_of' = $4::text
)
