-- name: received
-- A voice note seen for the first time; nothing when this message was handled already.
INSERT INTO voice_commands (chat_id, message_id, file_id, duration_s, session_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (chat_id, message_id) DO NOTHING
RETURNING id;

-- name: failed
UPDATE voice_commands SET status = 'failed', error = $2 WHERE id = $1;

-- name: transcribed
UPDATE voice_commands SET status = 'transcribed', transcript = $2, confidence = $3 WHERE id = $1;

-- name: waiting
-- The note now waits for the owner to confirm proposal $2.
UPDATE voice_commands SET approval_id = $2 WHERE id = $1;

-- name: acted
UPDATE voice_commands SET status = 'confirmed', task_id = $2 WHERE id = $1;

-- name: answer
-- Answers a note of session $2 that waits on a proposal, once; its proposal's id.
UPDATE voice_commands SET status = $3
WHERE id = $1 AND session_id = $2 AND status = 'transcribed' AND approval_id IS NOT NULL
RETURNING approval_id;

-- name: task_made
UPDATE voice_commands SET task_id = $2 WHERE id = $1;

