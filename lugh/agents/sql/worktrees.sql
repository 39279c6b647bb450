-- Task worktrees. The row is the commit point: a worktree is recorded only once git has made it,
-- and forgotten only once git has removed it.

-- name: task_worktree
SELECT * FROM tasks WHERE id = $1;

-- name: record_worktree
-- $1 task, $2 branch, $3 path, $4 base commit. Only while the task may still run: a task that
-- ended meanwhile gets no worktree (no row back).
WITH recorded AS (
    UPDATE tasks SET branch = $2, worktree = $3, base_commit = $4, updated_at = now()
    WHERE id = $1 AND status IN ('queued', 'running')
    RETURNING id
), event AS (
    INSERT INTO task_events (task_id, kind, data)
    SELECT id, 'worktree', jsonb_build_object('branch', $2::text, 'path', $3::text,
                                              'base_commit', $4::text)
    FROM recorded
    RETURNING id, task_id, kind
)
SELECT event.task_id,
       pg_notify('lugh_events', json_build_object(
           'id', event.id, 'task_id', event.task_id, 'kind', event.kind)::text)::text AS notified
FROM event;

-- name: forget_worktree
-- $1 task, $2 the path that git no longer has. The branch and base stay as the task's history.
UPDATE tasks SET worktree = NULL, updated_at = now()
WHERE id = $1 AND worktree = $2;

-- name: prune_candidates
-- $1 project, $2 task ids found in git or on disk, $3 seconds a failed task's worktree is kept,
-- $4 now (NULL: the database's). The project's tasks named in $2 or recording a worktree.
SELECT id, status, branch, worktree,
       (status = 'failed' AND coalesce(finished_at, updated_at)
            > coalesce($4::timestamptz, now()) - make_interval(secs => $3::float8)) AS kept_failed
FROM tasks
WHERE project_id = $1 AND (id = ANY($2::bigint[]) OR worktree IS NOT NULL);
