-- name: silo
SELECT s.id, s.project_id, p.name AS project, s.name, s.embedder, s.dim
FROM silos s JOIN projects p ON p.id = s.project_id
WHERE p.name = $1 AND s.name = $2;

-- name: insert_silo
-- No row back: the silo exists already, or there is no such project.
INSERT INTO silos (project_id, name, embedder, dim)
SELECT p.id, $2, $3, $4 FROM projects p WHERE p.name = $1
ON CONFLICT (project_id, name) DO NOTHING
RETURNING id, project_id, $1::text AS project, name, embedder, dim;

-- name: silos_of_project
SELECT s.id, s.project_id, p.name AS project, s.name, s.embedder, s.dim
FROM silos s JOIN projects p ON p.id = s.project_id
WHERE p.name = $1
ORDER BY s.name;

-- name: project_exists
SELECT EXISTS (SELECT 1 FROM projects WHERE name = $1);

-- name: lock_silo
SELECT embedder, dim FROM silos WHERE id = $1 FOR UPDATE;

-- name: chunks_to_embed
-- Keyset pages of a silo's chunks with what their embedding is computed from.
SELECT c.id, c.content, c.location, d.kind, d.path
FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.silo_id = $1 AND c.id > $2
ORDER BY c.id
LIMIT $3;

-- name: set_chunk_embedding
UPDATE chunks SET embedding = $2 WHERE id = $1;

-- name: set_silo_embedder
UPDATE silos SET embedder = $2, dim = $3 WHERE id = $1;

-- name: delete_silo
DELETE FROM silos s USING projects p
WHERE p.id = s.project_id AND p.name = $1 AND s.name = $2
RETURNING s.id;
