-- Low-priority lines waiting for the next digest of their chat.

-- name: add
-- $1 chat, $2 event, $3 line; a replayed event adds nothing.
INSERT INTO notify_digest_lines (chat_id, event_id, line) VALUES ($1, $2, $3)
ON CONFLICT (chat_id, event_id) DO NOTHING;

-- name: due_chats
-- Chats whose oldest waiting line has waited at least $1 seconds.
SELECT chat_id FROM notify_digest_lines
WHERE sent_in IS NULL
GROUP BY chat_id
HAVING min(created_at) <= now() - make_interval(secs => $1);

-- name: waiting
-- $1 chat: its waiting lines, oldest first, locked while the digest is queued.
SELECT id, line FROM notify_digest_lines
WHERE chat_id = $1 AND sent_in IS NULL
ORDER BY id
FOR UPDATE SKIP LOCKED;

-- name: sent
-- $1 line ids, $2 the outbox row of the digest.
UPDATE notify_digest_lines SET sent_in = $2 WHERE id = ANY ($1::bigint[]);

-- name: next_due
-- Seconds until the next digest is due ($1 the interval), or NULL when no line waits.
-- (Not greatest(0, …): that is 0 when no row waits, and the notifier would poll non-stop.)
SELECT extract(epoch FROM min(created_at) + make_interval(secs => $1) - now())::float8
FROM notify_digest_lines WHERE sent_in IS NULL;

-- name: prune
-- Lines sent in a digest a week ago (a replay that old is not expected).
DELETE FROM notify_digest_lines WHERE sent_in IS NOT NULL AND created_at < now() - interval '7 days';
