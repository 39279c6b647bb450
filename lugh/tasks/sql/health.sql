-- Probes of dispatch health (lugh.tasks.health). Read-only: they lock and change nothing.

-- name: notify_committed
-- A transaction that records a commit (it has an xid) and NOTIFYs: the floor of a wake-up.
SELECT pg_current_xact_id(), pg_notify($1, $2);

-- name: claim_probe
-- The claim's selection of the most urgent claimable tasks (sql/queue.sql `claim`), for a pool
-- of 16 free slots, without the lock and the update: what a degraded plan (statistics that have
-- not seen a burst: every queued task sorted for each claim) or bloat would slow down.
SELECT t.id FROM tasks t
WHERE t.status = 'queued' AND t.run_after <= now()
  AND NOT EXISTS (
      SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on_id
      WHERE d.task_id = t.id AND dep.status <> 'done')
ORDER BY t.priority DESC, t.id
LIMIT 16;

-- name: notify_waiters
-- Backends waiting on NOTIFY's locks now: its queue's lightweight locks, or the heavyweight
-- lock every notifying commit holds until its WAL is flushed (an object lock on database 0).
SELECT count(*)::int FROM pg_stat_activity a
WHERE a.wait_event IN ('NotifyQueue', 'NotifyQueueTail', 'NotifyBuffer', 'NotifySLRU')
   OR (a.wait_event_type = 'Lock' AND a.wait_event = 'object' AND EXISTS (
       SELECT 1 FROM pg_locks l
       WHERE l.pid = a.pid AND NOT l.granted AND l.locktype = 'object'
         AND l.classid = 'pg_database'::regclass AND l.objid = 0));

-- name: connections
-- Client connections in use, and how many the server accepts from ordinary roles.
SELECT (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
       current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - coalesce(current_setting('reserved_connections', true)::int, 0) AS available;
