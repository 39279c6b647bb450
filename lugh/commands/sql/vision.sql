-- name: received
-- A photo seen for the first time; nothing when this message was handled already.
INSERT INTO vision_tasks (chat_id, message_id, file_id, caption, session_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (chat_id, message_id) DO NOTHING
RETURNING id;

-- name: failed
UPDATE vision_tasks SET status = 'failed', error = $2 WHERE id = $1;

-- name: proposed
UPDATE vision_tasks SET status = 'proposed', proposals = $2::jsonb WHERE id = $1;

-- name: lock
-- A photo's proposals of session $2, held until the caller's transaction ends.
SELECT proposals, accepted, status FROM vision_tasks
WHERE id = $1 AND session_id = $2
FOR UPDATE;

-- name: accepted
UPDATE vision_tasks SET status = 'accepted', accepted = $2::jsonb WHERE id = $1;

-- name: ignore
-- Ignores what is left of a photo's proposals, once.
UPDATE vision_tasks SET status = 'ignored'
WHERE id = $1 AND session_id = $2 AND status IN ('proposed', 'accepted')
RETURNING accepted;
