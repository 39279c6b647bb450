"""Knowledge: per-project silos of documents, chunked, embedded and searched."""
