-- {dim} is the silo's vector dimension (an integer), written into the text because the HNSW
-- indexes are partial expression indexes on embedding::vector(<dim>): the ORDER BY expression
-- and the vector_dims() predicate must match an index's exactly for the planner to use it.
-- {documents} is empty, or the document_filter below with its parameters numbered to follow
-- the query's own.

-- name: nearest
-- $1 query vector, $2 silo, $3 how many; filters from $4.
SELECT c.id, c.embedding::vector({dim}) <=> $1::vector({dim}) AS distance
FROM chunks c
WHERE vector_dims(c.embedding) = {dim} AND c.silo_id = $2 {documents}
ORDER BY c.embedding::vector({dim}) <=> $1::vector({dim})
LIMIT $3;

-- name: hybrid
-- $1 query vector, $2 silo, $3 candidates from each retriever, $4 query text, $5 results,
-- $6 most full-text matches ranked; filters from $7.
-- Ranks from vector search and full-text search (every word of the query, websearch syntax:
-- "quoted phrases", -excluded, or) fused by reciprocal rank (k = 60). Full text ranks at most
-- $6 matches: a query of one common word matches a large part of a silo.
WITH vector_hits AS MATERIALIZED (
    SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT c.id, c.embedding::vector({dim}) <=> $1::vector({dim}) AS distance
        FROM chunks c
        WHERE vector_dims(c.embedding) = {dim} AND c.silo_id = $2 {documents}
        ORDER BY c.embedding::vector({dim}) <=> $1::vector({dim})
        LIMIT $3
    ) nearest
),
text_hits AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, ts_rank_cd(tsv, query) AS score
        FROM (
            SELECT c.id, c.tsv, q.query
            FROM chunks c, websearch_to_tsquery('english', $4) q(query)
            WHERE c.silo_id = $2 AND c.tsv @@ q.query {documents}
            LIMIT $6
        ) matches
        ORDER BY score DESC, id
        LIMIT $3
    ) ranked
),
fused AS (
    SELECT coalesce(v.id, t.id) AS id, v.distance,
           coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) AS rrf
    FROM vector_hits v FULL JOIN text_hits t ON t.id = v.id
)
SELECT c.id, c.content, c.location, f.rrf, f.distance,
       d.path, d.title, d.kind, s.uri AS source, s.kind AS source_kind
FROM fused f
JOIN chunks c ON c.id = f.id
JOIN documents d ON d.id = c.document_id
JOIN sources s ON s.id = d.source_id
WHERE c.silo_id = $2
ORDER BY f.rrf DESC, f.id
LIMIT $5;

-- name: document_filter
-- {source} source URI, {prefix} path prefix, {kind} document kind: each NULL for any.
AND c.document_id IN (
    SELECT d.id FROM documents d
    WHERE d.silo_id = $2
      AND ({source}::text IS NULL
           OR d.source_id IN (SELECT id FROM sources WHERE silo_id = $2 AND uri = {source}))
      AND ({prefix}::text IS NULL OR starts_with(d.path, {prefix}))
      AND ({kind}::text IS NULL OR d.kind = {kind})
)
