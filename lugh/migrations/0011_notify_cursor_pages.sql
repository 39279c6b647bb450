-- The notifier reads what piled up while it was away a page at a time (not in one query that
-- could hold days of agent steps): `reading_to` is the snapshot a paged read goes up to (NULL:
-- none under way) and `read_after` the (transaction, event id) up to which its pages are
-- handled, so a restart in the middle of such a read goes on from the page it reached.
ALTER TABLE notify_cursors
    ADD COLUMN reading_to text,
    ADD COLUMN read_after_tx xid8,
    ADD COLUMN read_after_id bigint;
