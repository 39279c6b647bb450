-- What the agent executor looks up about a task.

-- name: project_name
SELECT name FROM projects WHERE id = $1;

-- name: memories_for
-- $1 project, $2 agent, $3 how many: the newest memories this agent may read (its own and the
-- project's), most important first among them.
SELECT id, scope, kind, content FROM (
    SELECT * FROM memories
    WHERE project_id = $1 AND (scope = 'project' OR (scope = 'agent' AND agent_id = $2))
    ORDER BY created_at DESC LIMIT $3
) newest
ORDER BY importance DESC, id DESC;

-- name: touch_memories
UPDATE memories SET accessed_at = now() WHERE id = ANY($1::bigint[]);

-- name: assign_agent
-- $1 task, $2 lease token, $3 agent: the agent a task queued without one is run by (the
-- project's default), recorded under the lease, so the task says who did it and the agent is
-- busy while it runs (migration 0009's triggers).
UPDATE tasks SET agent_id = $3
WHERE id = $1 AND lease_token = $2 AND status = 'running' AND agent_id IS NULL;

-- name: reconcile_agents
-- Each agent's running tasks counted afresh, for the rare writer that went around 0009's
-- triggers (rows copied back by a restore, a hand edit); the agents that changed come back.
UPDATE agents a
SET running_tasks = r.n,
    status = CASE WHEN a.status = 'stopped' THEN 'stopped' WHEN r.n > 0 THEN 'busy' ELSE 'idle' END
FROM (
    SELECT a2.id, count(t.id)::integer AS n
    FROM agents a2 LEFT JOIN tasks t ON t.agent_id = a2.id AND t.status = 'running'
    GROUP BY a2.id
) r
WHERE r.id = a.id
  AND (a.running_tasks <> r.n
       OR a.status <> CASE WHEN a.status = 'stopped' THEN 'stopped'
                           WHEN r.n > 0 THEN 'busy' ELSE 'idle' END)
RETURNING a.id;
