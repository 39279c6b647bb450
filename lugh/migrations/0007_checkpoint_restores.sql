-- Checkpoints (FEAT-010): a checkpoint outlives its project, because the one taken before a
-- project is removed is how that removal is undone; it keeps the project's name for listing.
ALTER TABLE checkpoints ALTER COLUMN project_id DROP NOT NULL;
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_project_id_fkey;
ALTER TABLE checkpoints ADD CONSTRAINT checkpoints_project_id_fkey
    FOREIGN KEY (project_id) REFERENCES projects ON DELETE SET NULL;
ALTER TABLE checkpoints ADD COLUMN project_name text NOT NULL DEFAULT '';
CREATE INDEX checkpoints_by_kind ON checkpoints (project_name, kind, created_at DESC);

-- A restore's journal: each step is idempotent and records itself here, so a restore cut short
-- (kill -9, power loss) is run again from where it stopped. The database part is one
-- transaction that also moves `step` to 'rows'. `held` lists the tasks that were running in the
-- checkpoint: requeued but held back (run_after = infinity) until their worktrees are back.
CREATE TABLE checkpoint_restores (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checkpoint_id      bigint NOT NULL REFERENCES checkpoints ON DELETE CASCADE,
    project_id         bigint NOT NULL,  -- no reference: a restore may bring the project back
    status             text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    step               text NOT NULL DEFAULT 'started' CHECK (step IN ('started', 'rows', 'done')),
    pre_checkpoint_id  bigint REFERENCES checkpoints ON DELETE SET NULL,
    held               jsonb NOT NULL DEFAULT '[]',
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);
CREATE UNIQUE INDEX checkpoint_restores_one_running ON checkpoint_restores (project_id)
    WHERE status = 'running';
