-- Agent runs and their conversations, so a run survives a restart: after each step the model's
-- turn and the tool results so far are saved, and the next attempt of the task goes on from
-- there instead of starting over. A task has runs one after another (a plan, then the work; a
-- retry with the owner's feedback); at most one is open.
CREATE TABLE agent_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     bigint NOT NULL REFERENCES tasks ON DELETE CASCADE,
    mode        text NOT NULL CHECK (mode IN ('work', 'plan')),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'finished', 'stopped')),
    model       text NOT NULL,
    system      text NOT NULL,           -- the prompt as sent, so a resumed run sends it again
    tools       text[] NOT NULL,         -- the tools' names, likewise
    steps       integer NOT NULL DEFAULT 0,
    usage       jsonb NOT NULL DEFAULT '{}',
    cost_usd    double precision NOT NULL DEFAULT 0,
    elapsed_s   double precision NOT NULL DEFAULT 0,
    outcome     jsonb,                   -- summary, plan, or why it stopped
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agent_runs_one_open ON agent_runs (task_id) WHERE status = 'open';
CREATE INDEX agent_runs_by_task ON agent_runs (task_id, id);

CREATE TABLE agent_messages (
    run_id   bigint NOT NULL REFERENCES agent_runs ON DELETE CASCADE,
    seq      integer NOT NULL,
    role     text NOT NULL CHECK (role IN ('user', 'assistant')),
    content  jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);
