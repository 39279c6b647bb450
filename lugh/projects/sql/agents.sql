-- name: insert_agent
-- No row back means there is no such project; a unique violation means the name is taken.
INSERT INTO agents (project_id, name, role, model, system_prompt)
SELECT p.id, $2, $3, $4, $5 FROM projects p WHERE p.name = $1
RETURNING id, project_id, $1::text AS project, name, role, model, system_prompt, status, created_at;

-- name: insert_agent_unless_exists
INSERT INTO agents (project_id, name, role, model, system_prompt)
SELECT p.id, $2, $3, $4, $5 FROM projects p WHERE p.name = $1
ON CONFLICT (project_id, name) DO NOTHING
RETURNING id, project_id, $1::text AS project, name, role, model, system_prompt, status, created_at;

-- name: agent_by_name
SELECT a.id, a.project_id, p.name AS project, a.name, a.role, a.model, a.system_prompt,
       a.status, a.created_at
FROM agents a JOIN projects p ON p.id = a.project_id
WHERE p.name = $1 AND a.name = $2;

-- name: agent_by_id
SELECT a.id, a.project_id, p.name AS project, a.name, a.role, a.model, a.system_prompt,
       a.status, a.created_at
FROM agents a JOIN projects p ON p.id = a.project_id
WHERE a.id = $1;

-- name: agents_of_project
SELECT a.id, a.project_id, p.name AS project, a.name, a.role, a.model, a.system_prompt,
       a.status, a.created_at
FROM agents a JOIN projects p ON p.id = a.project_id
WHERE p.name = $1
ORDER BY a.id;

-- name: project_exists
SELECT EXISTS (SELECT 1 FROM projects WHERE name = $1);

-- name: stop_agent
UPDATE agents a SET status = 'stopped'
FROM projects p
WHERE a.id = $1 AND p.id = a.project_id
RETURNING a.id, a.project_id, p.name AS project, a.name, a.role, a.model, a.system_prompt,
          a.status, a.created_at;

-- name: resume_agent
-- Only a stopped agent changes: busy again if a run of its is still under way (0009).
UPDATE agents a SET status = CASE WHEN a.running_tasks > 0 THEN 'busy' ELSE 'idle' END
FROM projects p
WHERE a.id = $1 AND p.id = a.project_id AND a.status = 'stopped'
RETURNING a.id, a.project_id, p.name AS project, a.name, a.role, a.model, a.system_prompt,
          a.status, a.created_at;

-- name: delete_idle_agent
DELETE FROM agents a
USING projects p
WHERE a.id = $1 AND p.id = a.project_id AND a.status <> 'busy'
RETURNING a.id, a.project_id, p.name AS project, a.name, a.role, a.model, a.system_prompt,
          a.status, a.created_at;
