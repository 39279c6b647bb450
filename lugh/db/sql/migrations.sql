-- name: create_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: lock
SELECT pg_advisory_lock($1);

-- name: unlock
SELECT pg_advisory_unlock($1);

-- name: applied
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version;

-- name: record
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: table_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;
