"""The MCP bearer tokens: the owner's (read and write) and a read-only one, checked in
constant time."""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mcp.server.auth.provider import AccessToken

from lugh.config import Settings
from lugh.mcp.audit import READ_SCOPE, WRITE_SCOPE

TOKEN_FILE = "mcp_token"
READONLY_TOKEN_FILE = "mcp_token_readonly"
OWNER = "owner"
READONLY = "readonly"


def mcp_token(settings: Settings) -> str:
    """The owner's token: LUGH_MCP_TOKEN, else the one generated once into
    `<data_dir>/mcp_token` (mode 0600)."""
    if settings.mcp_token is not None:
        return settings.mcp_token.get_secret_value()
    return _stored_token(settings.resolved_data_dir / TOKEN_FILE)


def readonly_token(settings: Settings) -> str:
    """A token that can query but not change anything, generated once into
    `<data_dir>/mcp_token_readonly` (mode 0600)."""
    return _stored_token(settings.resolved_data_dir / READONLY_TOKEN_FILE)


def _stored_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


@dataclass(frozen=True)
class Grant:
    name: str  # who, in the audit trail
    token: str
    scopes: tuple[str, ...]


class StaticTokenVerifier:
    """The SDK's TokenVerifier over a fixed set of tokens; every one is compared, in constant
    time, so the answer's timing says nothing about which matched or how closely."""

    def __init__(self, grants: list[Grant]) -> None:
        if any(not g.token for g in grants):
            raise ValueError("An MCP token must not be empty.")
        self.grants = grants

    @classmethod
    def for_settings(cls, settings: Settings) -> StaticTokenVerifier:
        return cls([
            Grant(OWNER, mcp_token(settings), (READ_SCOPE, WRITE_SCOPE)),
            Grant(READONLY, readonly_token(settings), (READ_SCOPE,)),
        ])  # fmt: skip

    async def verify_token(self, token: str) -> AccessToken | None:
        return self.verify(token)

    def verify(self, token: str) -> AccessToken | None:
        given = token.encode("utf-8", "replace")
        found = None
        for grant in self.grants:
            if hmac.compare_digest(given, grant.token.encode()) and found is None:
                found = grant
        if found is None:
            return None
        return AccessToken(token=token, client_id=found.name, scopes=list(found.scopes))
