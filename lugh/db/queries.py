"""Named SQL queries kept in .sql files: each query follows a `-- name: <name>` line."""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Queries:
    """Attribute access to the queries of one .sql file: `Q.claim_task`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sql = parse_queries(path.read_text(encoding="utf-8"), str(path))

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"{self.path.name} has no query named {name!r}") from None

    def names(self) -> list[str]:
        return list(self._sql)


def parse_queries(text: str, origin: str = "<sql>") -> dict[str, str]:
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        if name in queries:
            raise ValueError(f"{origin} names the query {name!r} twice")
        sql = body.strip()
        if not sql:
            raise ValueError(f"{origin}: query {name!r} is empty")
        queries[name] = sql
    return queries


def load(module_file: str, name: str) -> Queries:
    """The queries in `sql/<name>.sql` next to the calling module."""
    return Queries(Path(module_file).with_name("sql") / f"{name}.sql")
