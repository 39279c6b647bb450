-- What the agent executor looks up about a task.

-- name: project_name
SELECT name FROM projects WHERE id = $1;
