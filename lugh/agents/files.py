"""The worktree file operations behind the agent's file tools, kept inside the worktree, race-free.

Every path is opened beneath the root (paths.py says how, and what a path may be). Writes go to a
temporary file in the same directory fd and are renamed over the target, never written through
an existing file. search_code matches with GNU grep over the opened files (search.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from lugh.agents.paths import (
    Beneath,
    ToolError,
    check_regular,
    openat2_available,
    path_parts,
    shown,
)
from lugh.agents.search import (
    MAX_MATCHES,
    MAX_SEARCHED_FILE_BYTES,
    SEARCH_TIMEOUT_S,
    glob_regex,
    grep,
)
from lugh.git import run as git

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_LISTED = 1000
_GREP_BATCH = 200
_BINARY_SNIFF = 8192
__all__ = ["MAX_MATCHES", "ToolError", "WorktreeFiles", "openat2_available", "path_parts"]


class WorktreeFiles:
    """read_file, write_file, edit_file, list_files and search_code over one worktree."""

    def __init__(
        self, root: Path, *, max_read_bytes: int = MAX_READ_BYTES,
        max_write_bytes: int = MAX_WRITE_BYTES, use_openat2: bool | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.beneath = Beneath(self.root, use_openat2=use_openat2)
        self.use_openat2 = self.beneath.use_openat2

    async def read_file(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> str:
        """The file's text (lines `start_line`..`end_line`, 1-based, inclusive, when given)."""
        return await asyncio.to_thread(self._read_file, path, start_line, end_line)

    async def write_file(self, path: str, content: str) -> str:
        """Create or replace the file with `content`, making parent directories as needed."""
        return await asyncio.to_thread(self._write_file, path, content)

    async def edit_file(self, path: str, old: str, new: str) -> str:
        """Replace the one exact occurrence of `old` in the file with `new`."""
        return await asyncio.to_thread(self._edit_file, path, old, new)

    async def list_files(self, path: str | None = None, pattern: str | None = None) -> str:
        """Files under `path` that git tracks or would track (ignored ones left out), one per
        line, filtered by a glob `pattern` (on the name, or the whole path when it has a '/')."""
        parts = path_parts(path, allow_root=True)
        names = await self._files_under(parts)
        if pattern:
            match = glob_regex(pattern).fullmatch
            names = [n for n in names if match(n if "/" in pattern else n.rpartition("/")[2])]
        where = f" under {shown(path)}" if parts else ""
        if not names:
            return f"No files{where}" + (f" match {pattern!r}." if pattern else ".")
        listed = "\n".join(names[:MAX_LISTED])
        if len(names) > MAX_LISTED:
            more = len(names) - MAX_LISTED
            listed += f"\n[{more} more not shown; narrow it with path or pattern.]"
        return listed

    async def search_code(self, pattern: str, path: str | None = None) -> str:
        """Lines matching the regular expression `pattern`, as `file:line: text`."""
        if not isinstance(pattern, str) or not pattern:
            raise ToolError("Give a regular expression to search for.")
        parts = path_parts(path, allow_root=True)
        names = await self._files_under(parts)
        deadline = asyncio.get_running_loop().time() + SEARCH_TIMEOUT_S
        matches: list[str] = []
        skipped = 0
        for start in range(0, len(names), _GREP_BATCH):
            fds, big = await asyncio.to_thread(self._open_batch, names[start : start + _GREP_BATCH])
            skipped += big
            try:
                matches += await grep(pattern, fds, MAX_MATCHES + 1 - len(matches), deadline)
            finally:
                for fd in fds:
                    os.close(fd)
            if len(matches) > MAX_MATCHES:
                break
        where = f" under {shown(path)}" if parts else ""
        notes = []
        if len(matches) > MAX_MATCHES:
            notes.append(f"[Stopped at {MAX_MATCHES} matches; narrow the pattern or path.]")
        if skipped:
            notes.append(f"[Skipped {skipped} files over {MAX_SEARCHED_FILE_BYTES} bytes.]")
        found = matches[:MAX_MATCHES] or [f"No matches for {pattern!r}{where}."]
        return "\n".join(found + notes)

    def _open_batch(self, names: list[str]) -> tuple[dict[int, str], int]:
        fds: dict[int, str] = {}
        big = 0
        for name in names:
            try:
                fd = self.beneath.open_file(path_parts(name), name, "search")
            except ToolError:
                continue  # a link, a .git path or gone: not searched, as the other tools refuse it
            if os.fstat(fd).st_size > MAX_SEARCHED_FILE_BYTES:
                os.close(fd)
                big += 1
            else:
                fds[fd] = name
        return fds, big

    # The operations, run in a worker thread.

    def _read_file(self, path: str, start_line: int | None, end_line: int | None) -> str:
        parts = path_parts(path)
        first, last = line_range(start_line, end_line)
        with open(self.beneath.open_file(parts, path, "read"), "rb") as f:
            head = f.read(_BINARY_SNIFF)
            if b"\x00" in head:
                size = os.fstat(f.fileno()).st_size
                return f"{shown(path)} is a binary file ({size} bytes); it is not shown."
            f.seek(0)
            if first == 1 and last is None:
                data = f.read(self.max_read_bytes + 1)
                if len(data) <= self.max_read_bytes:
                    return data.decode("utf-8", "replace")
                data = data[: data.rfind(b"\n", 0, self.max_read_bytes) + 1 or self.max_read_bytes]
                lines = data.count(b"\n")
                return data.decode("utf-8", "replace") + (
                    f"\n[Truncated at {len(data)} bytes of {os.fstat(f.fileno()).st_size}; "
                    f"read on with start_line={lines + 1}.]"
                )
            return self._read_lines(f, path, first, last)

    def _read_lines(self, f: object, path: str, first: int, last: int | None) -> str:
        taken: list[bytes] = []
        size = number = 0
        for number, line in enumerate(f, start=1):  # type: ignore[call-overload]
            if number < first:
                continue
            if last is not None and number > last:
                break
            if size + len(line) > self.max_read_bytes:
                return b"".join(taken).decode("utf-8", "replace") + (
                    f"\n[Truncated at {size} bytes; read on with start_line={number}.]"
                )
            taken.append(line)
            size += len(line)
        if number < first:
            return f"{shown(path)} has only {number} lines."
        return b"".join(taken).decode("utf-8", "replace")

    def _write_file(self, path: str, content: str) -> str:
        parts = path_parts(path)
        data = self._encode(content, path)
        with self.beneath.dir(parts[:-1], path, create=True) as dir_fd:
            existing = self._existing(dir_fd, parts, path)
            self._replace(dir_fd, parts, path, data, existing)
        verb = "Replaced" if existing is not None else "Created"
        return f"{verb} {shown(path)} ({len(data)} bytes)."

    def _edit_file(self, path: str, old: str, new: str) -> str:
        parts = path_parts(path)
        if not isinstance(old, str) or not isinstance(new, str) or not old:
            raise ToolError("edit_file needs the exact text to replace in old (not empty) and new.")
        with self.beneath.dir(parts[:-1], path) as dir_fd:
            existing = self._existing(dir_fd, parts, path)
            if existing is None:
                raise ToolError(
                    f"There is no {shown(path)} in the worktree; use write_file to create it."
                )
            with open(self.beneath.open_in(dir_fd, parts, path, "edit"), "rb") as f:
                raw = f.read(self.max_write_bytes + 1)
            if len(raw) > self.max_write_bytes:
                raise ToolError(
                    f"{shown(path)} is larger than the {self.max_write_bytes}-byte write limit, "
                    "so it cannot be edited."
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ToolError(
                    f"{shown(path)} is not UTF-8 text, so it cannot be edited; use write_file."
                ) from None
            count = text.count(old)
            if count != 1:
                raise ToolError(edit_miss(text, old, count, path))
            at = text.index(old)
            data = self._encode(text.replace(old, new, 1), path)
            self._replace(dir_fd, parts, path, data, existing)
        return f"Edited {shown(path)} at line {text.count(chr(10), 0, at) + 1}."

    def _encode(self, content: str, path: str) -> bytes:
        if not isinstance(content, str):
            raise ToolError("The content must be a string.")
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            raise ToolError(f"The content for {shown(path)} is not valid Unicode text.") from None
        if len(data) > self.max_write_bytes:
            raise ToolError(
                f"The content for {shown(path)} is {len(data)} bytes; "
                f"the limit is {self.max_write_bytes} bytes per write."
            )
        return data

    def _existing(self, dir_fd: int, parts: tuple[str, ...], path: str) -> os.stat_result | None:
        try:
            st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.beneath.refusal(exc, parts, path) from None
        if stat.S_ISLNK(st.st_mode):
            raise ToolError(
                f"The path {shown(path)} is refused because it is a symbolic link, "
                "and the file tools never write through links."
            )
        check_regular(st, path, "write")
        return st

    def _replace(
        self, dir_fd: int, parts: tuple[str, ...], path: str, data: bytes,
        existing: os.stat_result | None,
    ) -> None:
        temp = f".lugh-{secrets.token_hex(8)}.tmp"
        mode = stat.S_IMODE(existing.st_mode) & 0o777 if existing is not None else 0o644
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            with open(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), mode)
            # renameat replaces the name itself: a link swapped in meanwhile is replaced,
            # never followed.
            os.rename(temp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise ToolError(f"{shown(path)} is a directory; give a file path.") from None
            raise ToolError(f"Could not write {shown(path)}: {exc.strerror or exc}.") from None

    # Listing.

    async def _files_under(self, parts: tuple[str, ...]) -> list[str]:
        path = "/".join(parts)
        if parts:
            kind = await asyncio.to_thread(self._kind, parts, path)
            if kind == "file":
                return [path]
        result = await git(
            "--literal-pathspecs", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
            "--deduplicate", "--", path or ".", cwd=self.root, check=False,
        )
        if not result.ok:
            return await asyncio.to_thread(self._walk, parts)
        names = sorted(set(name for name in result.stdout.split("\0") if name))
        # --cached still lists tracked files deleted from the worktree.
        return await asyncio.to_thread(
            lambda: [n for n in names if os.path.lexists(os.path.join(self.root, n))]
        )

    def _kind(self, parts: tuple[str, ...], path: str) -> str:
        try:
            with self.beneath.dir(parts, path):
                return "dir"
        except ToolError:
            os.close(self.beneath.open_file(parts, path, "list"))
            return "file"

    def _walk(self, parts: tuple[str, ...]) -> list[str]:
        found = []
        with self.beneath.dir(parts, "/".join(parts)) as fd:
            top = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            try:
                for where, dirs, files, _ in os.fwalk(".", dir_fd=top, follow_symlinks=False):
                    dirs[:] = [d for d in dirs if d.lower() != ".git"]
                    base = os.path.normpath(os.path.join(*parts, where)) if parts else where
                    found += [os.path.normpath(os.path.join(base, f)) for f in files]
            finally:
                os.close(top)
        return sorted(found)


def line_range(start_line: int | None, end_line: int | None) -> tuple[int, int | None]:
    for name, value in (("start_line", start_line), ("end_line", end_line)):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and (not whole or value < 1):
            raise ToolError(f"{name} must be a whole number from 1, got {value!r}.")
    first = start_line or 1
    if end_line is not None and end_line < first:
        raise ToolError(f"end_line ({end_line}) comes before start_line ({first}).")
    return first, end_line


def edit_miss(text: str, old: str, count: int, path: str) -> str:
    """Why an edit did not apply, with what the model needs to fix its next try."""
    if count > 1:
        lines, at = [], -1
        while len(lines) < 10 and (at := text.find(old, at + 1)) != -1:
            lines.append(str(text.count("\n", 0, at) + 1))
        return (
            f"old occurs {count} times in {shown(path)} (at lines {', '.join(lines)}); "
            "include more of the surrounding lines so that it matches exactly once."
        )
    hint = "read the file again and copy the text exactly"
    if " ".join(old.split()) in " ".join(text.split()):
        hint = (
            "it matches only if whitespace is ignored, "
            "so copy the exact indentation and line breaks"
        )
    elif "\r\n" in text and old.replace("\n", "\r\n") in text:
        hint = "the file has CRLF line endings, so old must use them too"
    else:
        first = next((line.strip() for line in old.splitlines() if line.strip()), "")
        at = text.find(first) if first else -1
        if at != -1:
            line = text.count("\n", 0, at) + 1
            hint = f"its first line appears at line {line}, but the rest differs"
    return f"old was not found in {shown(path)}; {hint}."
