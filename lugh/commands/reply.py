"""What a command answers, independent of where it is shown (Telegram, console, MCP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Priority = Literal["critical", "high", "normal", "low"]


@dataclass(frozen=True)
class Button:
    """A choice offered with a reply: pressing it runs `action` with `argument`."""

    label: str
    action: str
    argument: str = ""


@dataclass(frozen=True)
class Code:
    """A block shown verbatim (a diff, a log excerpt), highlighted as `language` where possible."""

    text: str
    language: str = ""


@dataclass(frozen=True)
class Attachment:
    """A file sent with a reply (a full `.diff`, a rendered diff image)."""

    filename: str
    content: bytes
    mime: str = "application/octet-stream"


@dataclass
class Reply:
    """One message: plain-text lines, optional code blocks, buttons and files.

    `approval_id` binds the message to a pending approval, so buttons and reactions on it act on
    that approval. `ok` is False when the command was refused (the text says why, in one sentence).
    """

    text: str
    code: list[Code] = field(default_factory=list)
    buttons: list[list[Button]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    approval_id: int | None = None
    task_id: int | None = None
    priority: Priority = "normal"
    ok: bool = True

    @classmethod
    def refused(cls, sentence: str) -> Reply:
        return cls(text=sentence, ok=False)

    def plain(self) -> str:
        """The reply as plain text, for logs, the audit trail and MCP results."""
        parts = [self.text, *(c.text for c in self.code)]
        choices = [b.label for row in self.buttons for b in row]
        if choices:
            parts.append(" · ".join(f"[{c}]" for c in choices))
        return "\n".join(p for p in parts if p)
