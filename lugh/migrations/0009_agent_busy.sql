-- An agent is busy while a task of its is running, idle otherwise (stopped stays stopped): kept
-- by triggers in the same transaction as each task's move, so no crash can leave the two
-- disagreeing. A counter, not a recount: two tasks of one agent ending at once each lock the
-- agent's row, and the second adds its -1 to what the first wrote (a recount would read a
-- snapshot without the first one's end and leave the agent busy).
-- Tasks without an agent are the executor's until it resolves one (the project's default agent,
-- which it then records on the task), so the triggers skip them, and so cost the dispatch of
-- agentless tasks nothing beyond their WHEN.
ALTER TABLE agents ADD COLUMN running_tasks integer NOT NULL DEFAULT 0
    CHECK (running_tasks >= 0);

CREATE FUNCTION agents_count_running() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'running' AND OLD.agent_id IS NOT NULL THEN
        UPDATE agents
        SET running_tasks = greatest(running_tasks - 1, 0),
            status = CASE WHEN status = 'stopped' THEN 'stopped'
                          WHEN running_tasks > 1 THEN 'busy' ELSE 'idle' END
        WHERE id = OLD.agent_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'running' AND NEW.agent_id IS NOT NULL THEN
        UPDATE agents
        SET running_tasks = running_tasks + 1,
            status = CASE WHEN status = 'stopped' THEN 'stopped' ELSE 'busy' END
        WHERE id = NEW.agent_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_running_agents_update AFTER UPDATE OF status, agent_id ON tasks
FOR EACH ROW
WHEN ((OLD.status = 'running' OR NEW.status = 'running')
      AND (OLD.status IS DISTINCT FROM NEW.status OR OLD.agent_id IS DISTINCT FROM NEW.agent_id)
      AND (OLD.agent_id IS NOT NULL OR NEW.agent_id IS NOT NULL))
EXECUTE FUNCTION agents_count_running();

CREATE TRIGGER tasks_running_agents_insert AFTER INSERT ON tasks
FOR EACH ROW WHEN (NEW.status = 'running' AND NEW.agent_id IS NOT NULL)
EXECUTE FUNCTION agents_count_running();

CREATE TRIGGER tasks_running_agents_delete AFTER DELETE ON tasks
FOR EACH ROW WHEN (OLD.status = 'running' AND OLD.agent_id IS NOT NULL)
EXECUTE FUNCTION agents_count_running();

-- Agents as the tasks are now.
UPDATE agents a
SET running_tasks = r.n,
    status = CASE WHEN a.status = 'stopped' THEN 'stopped' WHEN r.n > 0 THEN 'busy' ELSE 'idle' END
FROM (
    SELECT a2.id, count(t.id)::integer AS n
    FROM agents a2 LEFT JOIN tasks t ON t.agent_id = a2.id AND t.status = 'running'
    GROUP BY a2.id
) r
WHERE r.id = a.id;
