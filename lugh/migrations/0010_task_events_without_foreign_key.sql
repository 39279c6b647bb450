-- task_events.task_id loses its foreign key. Every claim and completion writes one event per
-- task, and the key made each insert probe `tasks` and lock the task's row again (FOR KEY SHARE),
-- about a tenth of those statements' time (bench/dispatch.py), though each event is written by
-- the very statement that just moved its task under lock. What the key guaranteed is kept:
-- - `Events.publish`, the one insert given a task id from outside, checks that the task exists;
-- - ON DELETE CASCADE becomes a statement-level trigger (one DELETE per statement that deletes
--   tasks, nothing per event written).
ALTER TABLE task_events DROP CONSTRAINT task_events_task_id_fkey;

CREATE FUNCTION task_events_follow_deleted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_events e USING gone WHERE e.task_id = gone.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_delete_their_events AFTER DELETE ON tasks
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION task_events_follow_deleted_tasks();

-- Events a crash or a race could have left behind (none, while the key held).
DELETE FROM task_events e WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id);
