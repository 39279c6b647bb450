-- Voice notes and photos from Telegram: whose session they came from (so only that chat can
-- act on them), the proposal a voice note is waiting on, and which proposed tasks of a photo
-- were accepted (index → task id), so that a second press creates nothing.
ALTER TABLE voice_commands
    ADD COLUMN session_id   bigint REFERENCES sessions ON DELETE SET NULL,
    ADD COLUMN approval_id  bigint REFERENCES approvals ON DELETE SET NULL;

ALTER TABLE vision_tasks
    ADD COLUMN session_id  bigint REFERENCES sessions ON DELETE SET NULL,
    ADD COLUMN accepted    jsonb NOT NULL DEFAULT '{}';
