-- What the Telegram notifier needs to survive a restart: how far it has read the events, the
-- progress message of each running task, and the low-priority lines waiting for a digest.

-- Every event visible in `snapshot` has been handled. A snapshot and not an id, because event
-- ids are taken before commit: a lower id can become visible after a higher one was read.
CREATE TABLE notify_cursors (
    name           text PRIMARY KEY,
    snapshot       text NOT NULL,
    last_event_id  bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One progress message per run of a task and chat, edited in place. `pending` is the newest
-- state not shown yet (edits are throttled); `shown_at` is when the last edit was queued.
-- `run_event` is the `running` event that opened the message, `last_event` the newest event
-- it reflects: an event replayed after a restart never takes it back to an older state.
CREATE TABLE notify_progress (
    task_id      bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    chat_id      bigint NOT NULL,
    message_row  bigint NOT NULL,
    run_event    bigint NOT NULL,
    last_event   bigint NOT NULL,
    shown        text NOT NULL,
    shown_at     timestamptz NOT NULL DEFAULT now(),
    pending      text,
    edits        integer NOT NULL DEFAULT 0,
    finished     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (task_id, chat_id)
);
CREATE INDEX notify_progress_pending ON notify_progress (shown_at) WHERE pending IS NOT NULL;

-- Low-priority lines, sent together as one digest per chat and interval.
CREATE TABLE notify_digest_lines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id     bigint NOT NULL,
    event_id    bigint NOT NULL,
    line        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_in     bigint,  -- the outbox row of the digest that carried it
    UNIQUE (chat_id, event_id)
);
CREATE INDEX notify_digest_unsent ON notify_digest_lines (chat_id, id) WHERE sent_in IS NULL;
