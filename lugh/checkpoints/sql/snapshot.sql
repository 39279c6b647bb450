-- The rows of one project ($1), table by table, in the order a restore inserts them. Each
-- query selects `{columns}` (the table's stored columns, generated ones left out, filled in
-- from the catalog) from the table aliased `t`. A table not named here is not captured:
-- tests/checkpoints/test_snapshot.py lists every table that refers to a project's rows and
-- fails when a new one is neither captured nor named as left out on purpose.

-- name: projects
SELECT {columns} FROM projects t WHERE t.id = $1;

-- name: agents
SELECT {columns} FROM agents t WHERE t.project_id = $1 ORDER BY t.id;

-- name: tasks
SELECT {columns} FROM tasks t WHERE t.project_id = $1 ORDER BY t.id;

-- name: task_dependencies
SELECT {columns} FROM task_dependencies t JOIN tasks k ON k.id = t.task_id
WHERE k.project_id = $1 ORDER BY t.task_id, t.depends_on_id;

-- name: task_events
SELECT {columns} FROM task_events t JOIN tasks k ON k.id = t.task_id
WHERE k.project_id = $1 ORDER BY t.id;

-- name: approvals
SELECT {columns} FROM approvals t JOIN tasks k ON k.id = t.task_id
WHERE k.project_id = $1 ORDER BY t.id;

-- name: agent_runs
SELECT {columns} FROM agent_runs t JOIN tasks k ON k.id = t.task_id
WHERE k.project_id = $1 ORDER BY t.id;

-- name: agent_messages
SELECT {columns} FROM agent_messages t JOIN agent_runs r ON r.id = t.run_id
JOIN tasks k ON k.id = r.task_id
WHERE k.project_id = $1 ORDER BY t.run_id, t.seq;

-- name: silos
SELECT {columns} FROM silos t WHERE t.project_id = $1 ORDER BY t.id;

-- name: sources
SELECT {columns} FROM sources t JOIN silos s ON s.id = t.silo_id
WHERE s.project_id = $1 ORDER BY t.id;

-- name: documents
SELECT {columns} FROM documents t JOIN silos s ON s.id = t.silo_id
WHERE s.project_id = $1 ORDER BY t.id;

-- name: chunks
SELECT {columns} FROM chunks t JOIN silos s ON s.id = t.silo_id
WHERE s.project_id = $1 ORDER BY t.id;

-- name: memories
SELECT {columns} FROM memories t
WHERE t.project_id = $1 OR t.agent_id IN (SELECT id FROM agents WHERE project_id = $1)
ORDER BY t.id;

-- name: sessions
SELECT {columns} FROM sessions t WHERE t.project_id = $1 ORDER BY t.id;
