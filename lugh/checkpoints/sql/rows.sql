-- name: stored_columns
-- A table's columns that hold data (not dropped, not generated), in order.
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum;

-- name: contents_tasks
SELECT id, title, status FROM tasks WHERE project_id = $1 ORDER BY id;

-- name: contents_documents
SELECT d.id, d.path FROM documents d JOIN silos s ON s.id = d.silo_id
WHERE s.project_id = $1 ORDER BY d.id;

-- name: contents_memories
SELECT m.id, left(m.content, 80) AS content FROM memories m
WHERE m.project_id = $1 OR m.agent_id IN (SELECT id FROM agents WHERE project_id = $1)
ORDER BY m.id;

-- name: delete_memories
DELETE FROM memories
WHERE project_id = $1 OR agent_id IN (SELECT id FROM agents WHERE project_id = $1);

-- name: delete_tasks
-- Their events, dependencies, approvals, runs and messages go with them (ON DELETE CASCADE).
DELETE FROM tasks WHERE project_id = $1;

-- name: delete_agents
DELETE FROM agents WHERE project_id = $1;

-- name: delete_silos
-- Sources, documents and chunks go with them.
DELETE FROM silos WHERE project_id = $1;

-- name: hold_running_tasks
-- Tasks that were running when the checkpoint was taken are requeued, but held back until their
-- worktrees are back (released with their own run_after).
WITH held AS (
    SELECT id, run_after FROM tasks WHERE project_id = $1 AND status = 'running' FOR UPDATE
)
UPDATE tasks t
SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_after = 'infinity'
FROM held WHERE t.id = held.id
RETURNING t.id, held.run_after;

-- name: idle_agents
-- Nothing of the project runs once its running tasks are held back; the running-task counters
-- (0009) were raised by the copied rows' insert triggers as well as copied, so they are reset.
UPDATE agents
SET running_tasks = 0, status = CASE WHEN status = 'stopped' THEN 'stopped' ELSE 'idle' END
WHERE project_id = $1;

-- name: restore_sessions
-- A chat's session comes back only where it still points at this project (or none): a chat that
-- moved on to another project since keeps it.
WITH updated AS (
    UPDATE sessions s SET project_id = r.project_id, data = r.data, updated_at = r.updated_at
    FROM _restore_sessions r
    WHERE s.id = r.id AND (s.project_id = $1 OR s.project_id IS NULL)
    RETURNING s.id
)
INSERT INTO sessions OVERRIDING SYSTEM VALUE
SELECT r.* FROM _restore_sessions r
WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.id
                  OR (s.transport = r.transport AND s.external_id = r.external_id));

-- name: identity_column
SELECT a.attname, pg_get_serial_sequence($1, a.attname) AS seq FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attidentity <> '' AND NOT a.attisdropped;

-- name: lock_silos
SELECT id FROM silos WHERE project_id = $1 ORDER BY id FOR UPDATE;
