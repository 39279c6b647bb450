-- name: insert_project
INSERT INTO projects (name, repo_path, repo_url, default_branch)
VALUES ($1, $2, $3, $4)
RETURNING id, name, repo_path, repo_url, default_branch, settings, created_at;

-- name: project_by_name
SELECT id, name, repo_path, repo_url, default_branch, settings, created_at
FROM projects
WHERE name = $1;

-- name: project_name_for_repo_path
SELECT name FROM projects WHERE repo_path = $1 LIMIT 1;

-- name: list_projects
SELECT id, name, repo_path, repo_url, default_branch, settings, created_at
FROM projects
ORDER BY name;

-- name: delete_project
DELETE FROM projects
WHERE name = $1
RETURNING id, name, repo_path, repo_url, default_branch, settings, created_at;
