"""The worktree file operations behind the agent's file tools, kept inside the worktree, race-free.

The rule: a path is relative to the worktree root and may not contain '..', a `.git` part (any
case) or a NUL byte; no symbolic link is ever followed, anywhere in a path, even one that points
inside (a model can still see links with run_command). Every lookup starts from a directory fd of
the root: with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) where the
kernel has it (Linux ≥ 5.6), else one name at a time with O_NOFOLLOW and dir fds, so a directory
swapped for a link after a check is refused, not followed. A regular file with more than one hard
link is neither read nor written: its other name may be outside. Writes go to a temporary file in
the same directory fd and are renamed over the target, never written through an existing file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from lugh.errors import UserError
from lugh.git import run as git

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_LISTED = 1000
MAX_MATCHES = 200
MAX_SEARCHED_FILE_BYTES = 1024 * 1024
SEARCH_TIMEOUT_S = 20.0
_PER_FILE_MATCHES = 50
_SHOWN_LINE = 300
_GREP_BATCH = 200
_NAME_MAX = 255
_PATH_MAX = 4096
_BINARY_SNIFF = 8192

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO someone planted must not hang; it is refused by fstat right after.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class ToolError(UserError):
    """A file tool refused or failed; `str()` is the one-sentence error result the model sees."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE = 0x02 | 0x04 | 0x08  # RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH


def openat2(dir_fd: int, path: bytes, flags: int) -> int:
    """openat2(2) beneath `dir_fd`, never following a link; OSError as os.open raises it."""
    libc = _libc()
    how = _OpenHow(flags, 0, _RESOLVE)
    for _ in range(5):  # EAGAIN: the kernel saw a concurrent rename and asks for a retry
        fd = libc.syscall(
            ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(path),
            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            break
    raise OSError(err, os.strerror(err), os.fsdecode(path))


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


@functools.cache
def openat2_available() -> bool:
    """Whether this kernel (and any seccomp filter around us) allows openat2."""
    try:
        root = os.open("/", _DIR)
    except OSError:
        return False
    try:
        os.close(openat2(root, b".", _DIR))
        return True
    except (OSError, AttributeError):
        return False
    finally:
        os.close(root)


def shown(path: str) -> str:
    return repr(path if len(path) <= 80 else path[:79] + "…")


def path_parts(path: str | None, *, allow_root: bool = False) -> tuple[str, ...]:
    """The names in `path`, or ToolError saying in one sentence why the path is refused."""
    if path is None:
        path = ""
    if not isinstance(path, str):
        raise ToolError("The path must be a string, relative to the worktree root.")
    if "\x00" in path:
        raise ToolError(f"The path {shown(path)} is refused because it contains a NUL byte.")
    if path.startswith("/"):
        raise ToolError(
            f"The path {shown(path)} is refused because it is absolute; "
            "paths are relative to the worktree root, like 'src/app.py'."
        )
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ToolError(
            f"The path {shown(path)} is refused because it contains '..'; "
            "name files from the worktree root instead."
        )
    if any(part.lower() == ".git" for part in parts):
        raise ToolError(
            f"The path {shown(path)} is refused because .git is off limits to the file tools."
        )
    if not parts and not allow_root:
        raise ToolError("Give the path of a file, relative to the worktree root.")
    try:
        sizes = [len(os.fsencode(part)) for part in parts]
    except UnicodeEncodeError:
        raise ToolError(
            f"The path {shown(path)} is refused because it is not valid UTF-8."
        ) from None
    if any(size > _NAME_MAX for size in sizes) or sum(sizes) + len(sizes) > _PATH_MAX:
        raise ToolError(
            f"The path {shown(path)} is refused because it is too long "
            f"(at most {_NAME_MAX} bytes per name and {_PATH_MAX} in all)."
        )
    return parts


class WorktreeFiles:
    """read_file, write_file, edit_file, list_files and search_code over one worktree."""

    def __init__(
        self, root: Path, *, max_read_bytes: int = MAX_READ_BYTES,
        max_write_bytes: int = MAX_WRITE_BYTES, use_openat2: bool | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.use_openat2 = openat2_available() if use_openat2 is None else use_openat2

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

    # Opening beneath the root.

    @contextlib.contextmanager
    def _dir(self, parts: tuple[str, ...], path: str, *, create: bool = False) -> Iterator[int]:
        """A directory fd for `parts` beneath the root (made, with its parents, if `create`)."""
        root = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = self._open_dir(root, parts, create)
        except OSError as exc:
            raise self._refusal(exc, parts, path) from None
        finally:
            os.close(root)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open_dir(self, root: int, parts: tuple[str, ...], create: bool) -> int:
        if not parts:
            return os.dup(root)
        if self.use_openat2:
            try:
                return openat2(root, os.fsencode("/".join(parts)), _DIR)
            except FileNotFoundError:
                if not create:
                    raise
        fd = os.dup(root)
        try:
            for name in parts:
                try:
                    next_fd = os.open(name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                    next_fd = os.open(name, _DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_file(self, parts: tuple[str, ...], path: str, verb: str) -> int:
        """An fd to read the regular, singly-linked file at `parts`."""
        with self._dir(parts[:-1], path) as dir_fd:
            return self._open_in(dir_fd, parts, path, verb)

    def _open_in(self, dir_fd: int, parts: tuple[str, ...], path: str, verb: str) -> int:
        try:
            fd = os.open(parts[-1], _READ, dir_fd=dir_fd)
        except OSError as exc:
            raise self._refusal(exc, parts, path) from None
        try:
            check_regular(os.fstat(fd), path, verb)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_batch(self, names: list[str]) -> tuple[dict[int, str], int]:
        fds: dict[int, str] = {}
        big = 0
        for name in names:
            try:
                fd = self._open_file(path_parts(name), name, "search")
            except ToolError:
                continue  # a link, a .git path or gone: not searched, as the other tools refuse it
            if os.fstat(fd).st_size > MAX_SEARCHED_FILE_BYTES:
                os.close(fd)
                big += 1
            else:
                fds[fd] = name
        return fds, big

    def _refusal(self, exc: OSError, parts: tuple[str, ...], path: str) -> ToolError:
        if exc.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            link = self._first_link(parts)
            if link is not None:
                return ToolError(
                    f"The path {shown(path)} is refused because {shown(link)} is a symbolic link, "
                    "and the file tools never follow links; use the real path."
                )
        if exc.errno == errno.ENOENT:
            return ToolError(f"There is no {shown(path)} in the worktree.")
        if exc.errno == errno.ENOTDIR:
            return ToolError(
                f"The path {shown(path)} goes through something that is not a directory."
            )
        if exc.errno == errno.EXDEV:
            return ToolError(
                f"The path {shown(path)} is refused because it leads outside the worktree."
            )
        return ToolError(f"Could not open {shown(path)}: {exc.strerror or exc}.")

    def _first_link(self, parts: tuple[str, ...]) -> str | None:
        # Only for the message: the decision was already made, beneath the root, by the kernel.
        for i in range(1, len(parts) + 1):
            try:
                if stat.S_ISLNK(os.lstat(self.root.joinpath(*parts[:i])).st_mode):
                    return "/".join(parts[:i])
            except OSError:
                return None
        return None

    # The operations, run in a worker thread.

    def _read_file(self, path: str, start_line: int | None, end_line: int | None) -> str:
        parts = path_parts(path)
        first, last = line_range(start_line, end_line)
        with open(self._open_file(parts, path, "read"), "rb") as f:
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
        with self._dir(parts[:-1], path, create=True) as dir_fd:
            existing = self._existing(dir_fd, parts, path)
            self._replace(dir_fd, parts, path, data, existing)
        verb = "Replaced" if existing is not None else "Created"
        return f"{verb} {shown(path)} ({len(data)} bytes)."

    def _edit_file(self, path: str, old: str, new: str) -> str:
        parts = path_parts(path)
        if not isinstance(old, str) or not isinstance(new, str) or not old:
            raise ToolError("edit_file needs the exact text to replace in old (not empty) and new.")
        with self._dir(parts[:-1], path) as dir_fd:
            existing = self._existing(dir_fd, parts, path)
            if existing is None:
                raise ToolError(
                    f"There is no {shown(path)} in the worktree; use write_file to create it."
                )
            with open(self._open_in(dir_fd, parts, path, "edit"), "rb") as f:
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
            raise self._refusal(exc, parts, path) from None
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
            with self._dir(parts, path):
                return "dir"
        except ToolError:
            os.close(self._open_file(parts, path, "list"))
            return "file"

    def _walk(self, parts: tuple[str, ...]) -> list[str]:
        found = []
        with self._dir(parts, "/".join(parts)) as fd:
            top = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            try:
                for where, dirs, files, _ in os.fwalk(".", dir_fd=top, follow_symlinks=False):
                    dirs[:] = [d for d in dirs if d.lower() != ".git"]
                    base = os.path.normpath(os.path.join(*parts, where)) if parts else where
                    found += [os.path.normpath(os.path.join(base, f)) for f in files]
            finally:
                os.close(top)
        return sorted(found)


def check_regular(st: os.stat_result, path: str, verb: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{shown(path)} is a directory; use list_files to see what is in it.")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{shown(path)} is not a regular file, so the file tools do not {verb} it.")
    if st.st_nlink > 1:
        raise ToolError(
            f"The file tools do not {verb} {shown(path)} because it has {st.st_nlink} hard links, "
            "and another of them may be outside the worktree."
        )


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
