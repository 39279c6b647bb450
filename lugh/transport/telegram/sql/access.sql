-- name: owners
SELECT user_id FROM telegram_owners

-- name: set_code
INSERT INTO telegram_state (key, value) VALUES ('pairing_code_sha256', $1)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at = now()

-- name: pair
-- Uses the code up and records the owner in one statement: a code pairs one person, once.
WITH used AS (
    DELETE FROM telegram_state WHERE key = 'pairing_code_sha256' AND value = $1
    RETURNING 1
)
INSERT INTO telegram_owners (user_id)
SELECT $2 FROM used
ON CONFLICT (user_id) DO UPDATE SET paired_at = telegram_owners.paired_at
RETURNING user_id

-- name: refuse
INSERT INTO telegram_refused (user_id) VALUES ($1)
ON CONFLICT (user_id) DO NOTHING
RETURNING user_id
