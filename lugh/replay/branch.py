"""git for replay: file texts at a task's base commit, and a fork's branch made without a
checkout (one `git fast-import` commit on top of the base), so forking a large repository
costs what the changed files cost."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from lugh.git import run
from lugh.replay.files import BaseReader

IDENTITY = b"Lugh <lugh@lugh.local>"


def base_reader(repo: Path, base: str) -> BaseReader:
    async def read(path: str) -> str | None:
        found = await run("cat-file", "blob", f"{base}:{path}", cwd=repo, check=False)
        return found.stdout if found.ok else None

    return read


async def make_branch(
    repo: Path, branch: str, base: str, files: Mapping[str, str], message: str
) -> None:
    """Create `branch` at `base`, with one commit writing `files` on top when there are any."""
    if not files:
        await run("update-ref", f"refs/heads/{branch}", base, "", cwd=repo)
        return
    modes = await _modes(repo, base, files)
    text = message.encode()
    stream = [
        b"commit refs/heads/" + branch.encode(),
        IDENTITY.join([b"committer ", b" %d +0000" % int(time.time())]),
        b"data %d" % len(text), text,
        b"from " + base.encode(),
    ]  # fmt: skip
    for path, content in sorted(files.items()):
        data = content.encode("utf-8", "surrogateescape")
        stream += [b"M %s inline %s" % (modes.get(path, b"100644"), _quoted(path)),
                   b"data %d" % len(data), data]  # fmt: skip
    await run("fast-import", "--quiet", cwd=repo, input=b"\n".join(stream) + b"\n", timeout_s=300)


async def delete_branch(repo: Path, branch: str) -> None:
    await run("update-ref", "-d", f"refs/heads/{branch}", cwd=repo, check=False)


async def _modes(repo: Path, base: str, files: Mapping[str, str]) -> dict[str, bytes]:
    """Executable files stay executable; everything else is written as a regular file."""
    listed = await run("ls-tree", "-z", base, "--", *files, cwd=repo)
    modes = {}
    for entry in listed.stdout.split("\0"):
        head, _, path = entry.partition("\t")
        if head.startswith("100755 "):
            modes[path] = b"100755"
    return modes


def _quoted(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n") + b'"'
