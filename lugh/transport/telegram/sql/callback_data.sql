-- name: secret
-- The stored secret, or $1 stored now (the first caller wins; the others read its value).
WITH created AS (
    INSERT INTO telegram_state (key, value) VALUES ('callback_secret', $1)
    ON CONFLICT (key) DO NOTHING
    RETURNING value
)
SELECT value FROM created
UNION ALL
SELECT value FROM telegram_state WHERE key = 'callback_secret'
LIMIT 1
