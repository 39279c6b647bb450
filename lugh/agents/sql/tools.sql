-- The agent's own tools that write to Lugh's tables.

-- name: remember
-- $1 scope (agent | project), $2 project, $3 agent (NULL for project scope), $4 task, $5 kind,
-- $6 content. The same memory stored twice by one task (a step run again after a restart) is
-- kept once.
WITH existing AS (
    SELECT id FROM memories
    WHERE task_id = $4 AND scope = $1 AND kind = $5 AND content = $6
    LIMIT 1
), inserted AS (
    INSERT INTO memories (scope, project_id, agent_id, task_id, kind, content)
    SELECT $1, $2, $3, $4, $5, $6
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    RETURNING id
)
SELECT id FROM inserted UNION ALL SELECT id FROM existing;
