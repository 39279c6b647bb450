"""A Reply in a terminal: text, highlighted code, numbered choices, files saved to disk."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax

from lugh.commands.reply import Button, Reply


def render(reply: Reply, console: Console, attachments_dir: Path) -> list[Button]:
    """Print `reply`; return its buttons in the order they are numbered."""
    style = None if reply.ok else "red"
    console.print(reply.text, style=style, highlight=False, markup=False)
    for block in reply.code:
        console.print(Syntax(block.text, block.language or "text", word_wrap=True))
    for attachment in reply.attachments:
        attachments_dir.mkdir(parents=True, exist_ok=True)
        path = attachments_dir / Path(attachment.filename).name
        path.write_bytes(attachment.content)
        # A terminal cannot show the picture; the diff's text is printed above it already.
        what = "an image of it" if attachment.mime.startswith("image/") else attachment.filename
        console.print(f"(saved {what} to {path})", style="dim", highlight=False, markup=False)
    choices = [button for row in reply.buttons for button in row]
    if choices:
        numbered = "  ".join(f"[{n}] {b.label}" for n, b in enumerate(choices, 1))
        console.print(numbered, style="cyan", highlight=False, markup=False)
    return choices
