-- name: project_repo_path
SELECT repo_path FROM projects WHERE name = $1;

-- name: source_id
WITH inserted AS (
    INSERT INTO sources (silo_id, kind, uri) VALUES ($1, $2, $3)
    ON CONFLICT (silo_id, uri) DO NOTHING
    RETURNING id
)
SELECT id FROM inserted
UNION ALL
SELECT id FROM sources WHERE silo_id = $1 AND uri = $3
LIMIT 1;

-- name: document_state
SELECT id, content_hash, meta->>'chunker' AS chunker
FROM documents WHERE source_id = $1 AND path = $2;

-- name: chunk_vectors
SELECT content_hash, embedding FROM chunks WHERE document_id = $1;

-- name: silo_for_write
-- Held until the document's transaction ends, so a re-embedding cannot interleave.
SELECT embedder, dim FROM silos WHERE id = $1 FOR SHARE;

-- name: upsert_document
INSERT INTO documents (source_id, silo_id, path, kind, title, content_hash, size_bytes, meta)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (source_id, path) DO UPDATE
    SET kind = EXCLUDED.kind, title = EXCLUDED.title, content_hash = EXCLUDED.content_hash,
        size_bytes = EXCLUDED.size_bytes, meta = EXCLUDED.meta, updated_at = now()
RETURNING id;

-- name: delete_chunks_of_document
DELETE FROM chunks WHERE document_id = $1;

-- name: delete_document
DELETE FROM documents WHERE source_id = $1 AND path = $2;

-- name: delete_documents_except
DELETE FROM documents WHERE source_id = $1 AND NOT (path = ANY($2::text[]));

-- name: delete_source
DELETE FROM sources s USING silos si, projects p
WHERE si.id = s.silo_id AND p.id = si.project_id
  AND p.name = $1 AND si.name = $2 AND s.uri = $3
RETURNING s.id;

-- name: sources_of_silo
SELECT s.id, s.kind, s.uri, s.created_at,
       count(d.id) AS documents,
       coalesce(sum((d.meta->>'chunks')::integer), 0) AS chunks,
       max(d.updated_at) AS updated_at
FROM sources s
JOIN silos si ON si.id = s.silo_id
JOIN projects p ON p.id = si.project_id
LEFT JOIN documents d ON d.source_id = s.id
WHERE p.name = $1 AND si.name = $2
GROUP BY s.id
ORDER BY s.uri;

-- name: delete_source_if_empty
DELETE FROM sources s
WHERE s.id = $1 AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.source_id = s.id);
