"""The terminal front door: `lugh chat`, and `lugh run` without Telegram on a terminal."""
