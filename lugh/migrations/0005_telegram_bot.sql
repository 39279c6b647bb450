-- The Telegram bot's own state: who owns it, the pairing code, whom it refused, the buttons it
-- showed and the messages bound to an approval or task (for buttons and reactions).

-- Owners paired with `/start <code>` (TELEGRAM_ALLOWED_USER_IDS are owners too, from settings).
CREATE TABLE telegram_owners (
    user_id    bigint PRIMARY KEY,
    paired_at  timestamptz NOT NULL DEFAULT now()
);

-- Small named values of the bot: the pairing code's sha256 (single use: deleted when used) and
-- the secret that signs callback data.
CREATE TABLE telegram_state (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Users who were told once that the bot is private; they are not told again.
CREATE TABLE telegram_refused (
    user_id     bigint PRIMARY KEY,
    refused_at  timestamptz NOT NULL DEFAULT now()
);

-- A message bound to an approval (review, proposal) or a task: what its buttons and reactions
-- act on. `outbox_id` is the row of the message (the last part of a long one).
CREATE TABLE telegram_prompts (
    outbox_id    bigint PRIMARY KEY REFERENCES outbox ON DELETE CASCADE,
    chat_id      bigint NOT NULL,
    approval_id  bigint REFERENCES approvals ON DELETE SET NULL,
    task_id      bigint REFERENCES tasks ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Every inline button shown: its action and argument stay here; `callback_data` carries only
-- the id and a MAC. A keyboard is the buttons of one message; pressing a button that changes
-- state uses the whole keyboard up.
CREATE TABLE telegram_buttons (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id      bigint NOT NULL,
    outbox_id    bigint REFERENCES outbox ON DELETE CASCADE,
    action       text NOT NULL,
    argument     text NOT NULL DEFAULT '',
    label        text NOT NULL,
    approval_id  bigint REFERENCES approvals ON DELETE SET NULL,
    task_id      bigint REFERENCES tasks ON DELETE SET NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telegram_buttons_by_message ON telegram_buttons (outbox_id) WHERE used_at IS NULL;
