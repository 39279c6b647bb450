-- name: open
-- Runs for every message, so it does not wait for its WAL flush: a session row lost in a crash
-- is made again by the next message, and any later durable commit flushes this one with it.
INSERT INTO sessions (transport, external_id)
SELECT $1, $2 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick
ON CONFLICT (transport, external_id) DO UPDATE SET updated_at = now()
RETURNING id, transport, external_id, project_id, data, created_at, updated_at;

-- name: get
SELECT id, transport, external_id, project_id, data, created_at, updated_at
FROM sessions WHERE id = $1;

-- name: set_project
UPDATE sessions SET project_id = $2, updated_at = now()
WHERE id = $1
RETURNING id, transport, external_id, project_id, data, created_at, updated_at;

-- name: record
-- Appends to one of the session's bounded logs (`asked` or `created`), keeping the newest $4.
-- History, not state: committed without waiting for the WAL flush, like `open`.
UPDATE sessions
SET data = jsonb_set(
        data, ARRAY[$2::text],
        (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)
         FROM (SELECT e, n FROM jsonb_array_elements(coalesce(data -> $2, '[]'::jsonb) || jsonb_build_array($3::jsonb))
                    WITH ORDINALITY AS t(e, n)
               ORDER BY n DESC LIMIT $4) newest)),
    updated_at = now()
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick
WHERE id = $1;
