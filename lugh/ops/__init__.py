"""Operating an installation: checks of what Lugh depends on, backups and restores."""
