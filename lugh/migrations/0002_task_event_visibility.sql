-- Events carry the id of the transaction that wrote them, so a subscriber can read exactly what
-- became visible since its last read (ids alone can commit out of order) and miss nothing.
ALTER TABLE task_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX task_events_by_tx ON task_events (tx);
