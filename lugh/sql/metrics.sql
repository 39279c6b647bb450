-- What /metrics reports (lugh.metrics). Counts only: no titles, no texts, no ids.

-- name: tasks_by_status
SELECT status, count(*)::bigint AS n FROM tasks GROUP BY status;

-- name: failed_recently
-- Tasks that ended failed within the window ($1 seconds).
SELECT count(*)::bigint FROM tasks
WHERE status = 'failed' AND finished_at > now() - make_interval(secs => $1);

-- name: outbox_backlog
-- Messages still to send (pending or being sent), the age of the oldest, and those given up.
SELECT count(*) FILTER (WHERE status IN ('pending', 'sending'))::bigint AS waiting,
       coalesce(extract(epoch FROM now() - min(created_at)
                FILTER (WHERE status IN ('pending', 'sending'))), 0)::float8 AS oldest_s,
       count(*) FILTER (WHERE status = 'failed')::bigint AS failed
FROM outbox WHERE status <> 'sent';
