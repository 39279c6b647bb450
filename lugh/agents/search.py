"""search_code's matching and list_files' globs: GNU grep over files Lugh already opened, and
glob patterns as regular expressions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import subprocess
from collections.abc import AsyncIterator

from lugh.agents.paths import ToolError

MAX_MATCHES = 200
MAX_SEARCHED_FILE_BYTES = 1024 * 1024
SEARCH_TIMEOUT_S = 20.0
_PER_FILE_MATCHES = 50
_SHOWN_LINE = 300


def glob_regex(pattern: str) -> re.Pattern[str]:
    """`*` within a name, `**` across directories, `?`, `[abc]` and `{a,b}`."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negated = body.startswith(("!", "^"))
            body = re.sub(r"[\\\[&~|^]", lambda c: "\\" + c[0], body[1:] if negated else body)
            out.append("[" + ("^" if negated else "") + body + "]")
            i = end + 1
        elif pattern[i] == "{" and (end := pattern.find("}", i)) != -1:
            alternatives = pattern[i + 1 : end].split(",")
            out.append("(?:" + "|".join(re.escape(alt) for alt in alternatives) + ")")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise ToolError(f"The pattern {pattern!r} is not a valid glob ({exc}).") from None


async def grep(pattern: str, fds: dict[int, str], room: int, deadline: float) -> list[str]:
    """`file:line: text` for lines matching `pattern` in the open files `fds`, at most `room`.

    GNU grep does the matching: PCRE with its backtracking limits (or ERE), so no pattern can hang
    Lugh, and binary files are skipped. It reads our already opened files through /dev/fd/N,
    so it never resolves a worktree path itself.
    """
    if not fds:
        return []
    flavour = await asyncio.to_thread(_grep_flavour)
    argv = ["grep", flavour, "-n", "-H", "-I", "--color=never", "-m", str(_PER_FILE_MATCHES),
            "-e", pattern, "--", *(f"/dev/fd/{fd}" for fd in fds)]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=tuple(fds), env={"PATH": os.defpath, "LC_ALL": "C"}, start_new_session=True,
        )
    except OSError:
        raise ToolError("search_code needs GNU grep, which is not installed here.") from None
    found: list[str] = []
    try:
        remaining = deadline - asyncio.get_running_loop().time()
        async with asyncio.timeout(max(remaining, 0.1)):
            async for line in _bounded_lines(proc.stdout):  # type: ignore[arg-type]
                if (hit := _GREP_LINE.match(line)) and int(hit[1]) in fds:
                    text = line[hit.end() :].decode("utf-8", "replace").rstrip("\r\n")
                    if len(text) > _SHOWN_LINE:
                        text = text[: _SHOWN_LINE - 1] + "…"
                    found.append(f"{fds[int(hit[1])]}:{int(hit[2])}: {text}")
                    if len(found) >= room:
                        break
            error = (await proc.stderr.read(2000)).decode(  # type: ignore[union-attr]
                "utf-8", "replace"
            )
            await proc.wait()
    except TimeoutError:
        raise ToolError(
            f"The search took longer than {SEARCH_TIMEOUT_S:g} s and was stopped; "
            "narrow the pattern or path."
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
    if proc.returncode == 2 and error.strip() and not found:
        reason = error.strip().splitlines()[0].removeprefix("grep: ")
        reason = re.sub(r"/dev/fd/(\d+)", lambda m: fds.get(int(m[1]), m[0]), reason)
        raise ToolError(f"The pattern {pattern!r} cannot be used: {reason}.")
    return found


_GREP_LINE = re.compile(rb"/dev/fd/(\d+):(\d+):")


async def _bounded_lines(
    stream: asyncio.StreamReader, longest: int = 4096
) -> AsyncIterator[bytes]:
    """Lines of `stream`, each cut to `longest` bytes, holding no more than that in memory."""
    buffer, skipping = b"", False
    while chunk := await stream.read(65536):
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end == -1:
                if len(buffer) > longest:
                    if not skipping:
                        yield buffer[:longest]
                    buffer, skipping = b"", True
                break
            if not skipping:
                yield buffer[:end][:longest]
            buffer, skipping = buffer[end + 1 :], False
    if buffer and not skipping:
        yield buffer[:longest]


@functools.cache
def _grep_flavour() -> str:
    try:
        probe = subprocess.run(
            ["grep", "-P", "-e", "x", "/dev/null"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "-E"
    return "-P" if probe.returncode == 1 else "-E"
