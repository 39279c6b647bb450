-- Lugh's data model (DESIGN §4). Later changes go in new numbered files; never edit this one.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE projects (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    repo_path       text NOT NULL,
    repo_url        text,
    default_branch  text NOT NULL DEFAULT 'main',
    settings        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    role           text NOT NULL DEFAULT 'engineer',
    model          text,
    system_prompt  text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'busy', 'stopped')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE tasks (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id        bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    agent_id          bigint REFERENCES agents ON DELETE SET NULL,
    parent_id         bigint REFERENCES tasks ON DELETE SET NULL,
    title             text NOT NULL,
    body              text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'queued' CHECK (status IN (
                          'queued', 'running', 'awaiting_review',
                          'done', 'rejected', 'failed', 'cancelled')),
    priority          smallint NOT NULL DEFAULT 0,
    source            text NOT NULL DEFAULT 'cli' CHECK (source IN (
                          'telegram', 'voice', 'photo', 'mcp', 'cli', 'console')),
    dedupe_key        text UNIQUE,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_after         timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_token       bigint NOT NULL DEFAULT 0,
    lease_expires_at  timestamptz,
    branch            text,
    worktree          text,
    base_commit       text,
    options           jsonb NOT NULL DEFAULT '{}',
    result            jsonb,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
);
CREATE INDEX tasks_claimable ON tasks (priority DESC, id) WHERE status = 'queued';
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX tasks_by_project ON tasks (project_id, status);
CREATE INDEX tasks_by_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE task_dependencies (
    task_id        bigint NOT NULL REFERENCES tasks ON DELETE CASCADE,
    depends_on_id  bigint NOT NULL REFERENCES tasks ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on_id),
    CHECK (task_id <> depends_on_id)
);
CREATE INDEX task_dependencies_reverse ON task_dependencies (depends_on_id);

-- Append-only: every step, tool call, reasoning note, approval and notification of a task.
CREATE TABLE task_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     bigint NOT NULL REFERENCES tasks ON DELETE CASCADE,
    kind        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_events_by_task ON task_events (task_id, id);

-- Every approval is bound to one prompt message (a Telegram message, or a console/MCP prompt).
CREATE TABLE approvals (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id            bigint REFERENCES tasks ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('review', 'plan', 'step', 'proposal', 'confirm')),
    payload            jsonb NOT NULL DEFAULT '{}',
    chat_id            bigint,
    prompt_message_id  bigint,
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN (
                           'pending', 'approved', 'rejected', 'expired', 'cancelled')),
    method             text CHECK (method IN ('button', 'reaction', 'voice', 'command', 'mcp')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    responded_at       timestamptz,
    expires_at         timestamptz
);
CREATE UNIQUE INDEX approvals_by_prompt ON approvals (chat_id, prompt_message_id)
    WHERE prompt_message_id IS NOT NULL;
CREATE INDEX approvals_pending ON approvals (task_id) WHERE status = 'pending';

-- Knowledge: a project has one or more silos; the embedding dimension lives with the silo.
CREATE TABLE silos (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    name        text NOT NULL DEFAULT 'default',
    embedder    text NOT NULL,
    dim         integer NOT NULL CHECK (dim > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE sources (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    silo_id     bigint NOT NULL REFERENCES silos ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('file', 'folder', 'repo', 'upload', 'text', 'url')),
    uri         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (silo_id, uri)
);

CREATE TABLE documents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id     bigint NOT NULL REFERENCES sources ON DELETE CASCADE,
    silo_id       bigint NOT NULL REFERENCES silos ON DELETE CASCADE,
    path          text NOT NULL,
    kind          text NOT NULL,
    title         text,
    content_hash  text NOT NULL,
    size_bytes    bigint NOT NULL DEFAULT 0,
    meta          jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_id, path)
);

CREATE TABLE chunks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id   bigint NOT NULL REFERENCES documents ON DELETE CASCADE,
    silo_id       bigint NOT NULL REFERENCES silos ON DELETE CASCADE,
    ordinal       integer NOT NULL,
    content       text NOT NULL,
    content_hash  text NOT NULL,
    location      jsonb NOT NULL DEFAULT '{}',
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    embedding     vector NOT NULL,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_by_silo ON chunks (silo_id);
CREATE INDEX chunks_fts ON chunks USING gin (tsv);
-- HNSW needs a fixed dimension: one partial expression index per embedder dimension in use.
CREATE INDEX chunks_hnsw_384 ON chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE vector_dims(embedding) = 384;
CREATE INDEX chunks_hnsw_1536 ON chunks USING hnsw ((embedding::vector(1536)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE vector_dims(embedding) = 1536;

CREATE TABLE memories (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope        text NOT NULL CHECK (scope IN ('project', 'agent', 'owner')),
    project_id   bigint REFERENCES projects ON DELETE CASCADE,
    agent_id     bigint REFERENCES agents ON DELETE CASCADE,
    task_id      bigint REFERENCES tasks ON DELETE SET NULL,
    kind         text NOT NULL DEFAULT 'semantic' CHECK (kind IN (
                     'episodic', 'semantic', 'procedural', 'preference')),
    content      text NOT NULL,
    embedding    vector,
    importance   real NOT NULL DEFAULT 0.5 CHECK (importance BETWEEN 0 AND 1),
    history      jsonb NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    accessed_at  timestamptz
);
CREATE INDEX memories_by_scope ON memories (scope, project_id, agent_id);

CREATE TABLE checkpoints (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('manual', 'merge', 'daily', 'pre_operation')),
    label       text,
    path        text NOT NULL,
    size_bytes  bigint NOT NULL DEFAULT 0,
    manifest    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkpoints_by_project ON checkpoints (project_id, created_at DESC);

CREATE TABLE sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transport    text NOT NULL CHECK (transport IN ('telegram', 'console', 'mcp', 'cli')),
    external_id  text NOT NULL,
    project_id   bigint REFERENCES projects ON DELETE SET NULL,
    data         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (transport, external_id)
);

CREATE TABLE voice_commands (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id     bigint NOT NULL,
    message_id  bigint NOT NULL,
    file_id     text NOT NULL,
    duration_s  real,
    transcript  text,
    confidence  real,
    status      text NOT NULL DEFAULT 'received' CHECK (status IN (
                    'received', 'transcribed', 'confirmed', 'rejected', 'failed')),
    task_id     bigint REFERENCES tasks ON DELETE SET NULL,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, message_id)
);

CREATE TABLE vision_tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id     bigint NOT NULL,
    message_id  bigint NOT NULL,
    file_id     text NOT NULL,
    caption     text,
    proposals   jsonb NOT NULL DEFAULT '[]',
    status      text NOT NULL DEFAULT 'received' CHECK (status IN (
                    'received', 'proposed', 'accepted', 'ignored', 'failed')),
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, message_id)
);

-- Messages to send; a restart loses none and sends none twice.
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id          bigint NOT NULL,
    method           text NOT NULL,
    payload          jsonb NOT NULL,
    priority         text NOT NULL DEFAULT 'normal' CHECK (priority IN ('critical', 'high', 'normal', 'low')),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    dedupe_key       text UNIQUE,
    attempts         integer NOT NULL DEFAULT 0,
    not_before       timestamptz NOT NULL DEFAULT now(),
    sent_message_id  bigint,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX outbox_pending ON outbox (not_before, id) WHERE status IN ('pending', 'sending');

CREATE TABLE telegram_updates (
    update_id    bigint PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now()
);
