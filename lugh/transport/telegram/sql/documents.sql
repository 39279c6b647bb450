-- name: summary
-- What an uploaded document became in project $1's silo $2: its kind, pages (PDF), sections
-- (Markdown headings) and chunks.
SELECT d.kind,
       (d.meta ->> 'pages')::int AS pages,
       count(DISTINCT c.location -> 'heading') FILTER (WHERE d.kind = 'markdown') AS sections,
       count(c.id) AS chunks
FROM documents d
JOIN sources s ON s.id = d.source_id
JOIN silos si ON si.id = d.silo_id
JOIN projects p ON p.id = si.project_id
LEFT JOIN chunks c ON c.document_id = d.id
WHERE p.name = $1 AND si.name = $2 AND s.uri = 'upload:' || $3 AND d.path = $3
GROUP BY d.id;
