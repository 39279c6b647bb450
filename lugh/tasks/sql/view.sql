-- name: task_view
-- $1 task, $2 how many of its newest events. Everything a status view shows, in one round trip:
-- the task with its project's and agent's names, its newest events oldest first (the records of
-- MCP calls left out), and its latest review with the diff summary stored when the work was
-- submitted (recomputing it runs git several times).
SELECT t.*,
       ARRAY(SELECT depends_on_id FROM task_dependencies
             WHERE task_id = t.id ORDER BY 1) AS depends_on,
       p.name AS project_name, a.name AS agent_name,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', e.id, 'kind', e.kind, 'data', e.data,
                   'at', e.created_at AT TIME ZONE 'UTC') ORDER BY e.id), '[]')
        FROM (SELECT id, kind, data, created_at FROM task_events
              WHERE task_id = t.id AND kind <> 'mcp_call'
              ORDER BY id DESC LIMIT $2) e) AS recent_events,
       r.id AS review_id, r.status AS review_status, r.payload -> 'diff' AS review_diff
FROM tasks t
JOIN projects p ON p.id = t.project_id
LEFT JOIN agents a ON a.id = t.agent_id
LEFT JOIN LATERAL (
    SELECT id, status, payload FROM approvals
    WHERE task_id = t.id AND kind = 'review'
    ORDER BY id DESC LIMIT 1
) r ON true
WHERE t.id = $1;
