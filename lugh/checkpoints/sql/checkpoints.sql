-- name: insert_checkpoint
INSERT INTO checkpoints (project_id, project_name, kind, label, path, size_bytes, manifest)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
RETURNING id, project_id, project_name, kind, label, path, size_bytes, created_at;

-- name: get_checkpoint
SELECT id, project_id, project_name, kind, label, path, size_bytes, created_at, manifest
FROM checkpoints WHERE id = $1;

-- name: list_checkpoints
-- $1 a project's name, or NULL for every project's.
SELECT id, project_id, project_name, kind, label, path, size_bytes, created_at
FROM checkpoints WHERE $1::text IS NULL OR project_name = $1
ORDER BY created_at DESC, id DESC;

-- name: delete_checkpoint
-- Refused (no row) while a restore of it, or one that saved it, is under way.
DELETE FROM checkpoints c WHERE c.id = $1
  AND NOT EXISTS (SELECT 1 FROM checkpoint_restores r
                  WHERE r.status = 'running' AND (r.checkpoint_id = c.id OR r.pre_checkpoint_id = c.id))
RETURNING id, path;

-- name: retention_candidates
-- Every checkpoint of `kind` ($1), newest first within its project, with its rank.
SELECT id, project_name, created_at,
       row_number() OVER (PARTITION BY project_name ORDER BY created_at DESC, id DESC) AS rank
FROM checkpoints WHERE kind = $1;

-- name: checkpoint_paths
SELECT path FROM checkpoints;

-- name: running_tasks_with_worktrees
SELECT id, branch, worktree, base_commit FROM tasks
WHERE project_id = $1 AND status = 'running' AND worktree IS NOT NULL AND branch IS NOT NULL;

-- name: running_task_ids
SELECT id FROM tasks WHERE project_id = $1 AND status = 'running' ORDER BY id;

-- name: latest_of_kind
SELECT max(created_at) FROM checkpoints WHERE project_name = $1 AND kind = $2;

-- name: start_restore
-- No row back: a restore of this project is already under way.
INSERT INTO checkpoint_restores (checkpoint_id, project_id) VALUES ($1, $2)
ON CONFLICT (project_id) WHERE status = 'running' DO NOTHING
RETURNING id, checkpoint_id, project_id, step, pre_checkpoint_id, held;

-- name: running_restore
SELECT id, checkpoint_id, project_id, step, pre_checkpoint_id, held
FROM checkpoint_restores WHERE project_id = $1 AND status = 'running';

-- name: running_restores
SELECT id, checkpoint_id, project_id, step, pre_checkpoint_id, held
FROM checkpoint_restores WHERE status = 'running' ORDER BY id;

-- name: note_pre_checkpoint
UPDATE checkpoint_restores SET pre_checkpoint_id = $2 WHERE id = $1;

-- name: rows_restored
UPDATE checkpoint_restores SET step = 'rows', held = $2::jsonb WHERE id = $1;

-- name: tasks_with_worktrees
-- After the rows are back: the tasks whose worktrees a restore makes again.
SELECT id, status, branch, worktree FROM tasks
WHERE project_id = $1 AND branch IS NOT NULL AND worktree IS NOT NULL
  AND (id = ANY($2::bigint[]) OR status = 'awaiting_review')
ORDER BY id;

-- name: move_worktree
UPDATE tasks SET worktree = $2 WHERE id = $1;

-- name: release_held
-- Held tasks get their own run_after back and are announced to the workers.
WITH held AS (
    SELECT (h->>'id')::bigint AS id, (h->>'run_after')::timestamptz AS run_after
    FROM jsonb_array_elements($1::jsonb) h
), released AS (
    UPDATE tasks t SET run_after = held.run_after
    FROM held WHERE t.id = held.id AND t.run_after = 'infinity' AND t.status = 'queued'
    RETURNING t.id
)
SELECT id, pg_notify('lugh_tasks', id::text) FROM released;

-- name: finish_restore
UPDATE checkpoint_restores SET status = 'done', step = 'done', finished_at = now() WHERE id = $1;

-- name: lock_restore
-- Two processes finishing the same restore: the second waits here and then skips the rows.
SELECT step, held FROM checkpoint_restores WHERE id = $1 FOR UPDATE;

-- name: try_restore_lock
-- Held by the process running a project's restore ($1) for as long as it runs.
SELECT pg_try_advisory_lock(hashtext('lugh.checkpoints.restore'), ($1::bigint % 2147483647)::integer);

-- name: restore_unlock
SELECT pg_advisory_unlock(hashtext('lugh.checkpoints.restore'), ($1::bigint % 2147483647)::integer);

-- name: restore_journal
SELECT id, checkpoint_id, project_id, status, step, pre_checkpoint_id, held
FROM checkpoint_restores WHERE id = $1;
