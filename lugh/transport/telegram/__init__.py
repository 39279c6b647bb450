"""Telegram transport: the outbox that delivers every outgoing message, and safe splitting."""
