"""Postgres: the embedded server, the connection pool, migrations and named SQL queries."""
