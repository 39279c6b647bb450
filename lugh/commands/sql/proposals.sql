-- name: propose
INSERT INTO approvals (kind, payload, expires_at)
VALUES ('confirm', $1::jsonb, now() + make_interval(secs => $2))
RETURNING id;

-- name: answer
-- Answers a pending proposal of session $2 once; nothing for another session's, an expired or
-- an answered one.
UPDATE approvals SET status = $3, method = $4, responded_at = now()
WHERE id = $1 AND kind = 'confirm' AND status = 'pending'
  AND (payload ->> 'session_id')::bigint = $2
  AND (expires_at IS NULL OR expires_at > now())
RETURNING payload;
