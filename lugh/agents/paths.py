"""Opening paths beneath a worktree root without ever leaving it, and the rules a path must meet.

The rule: a path is relative to the worktree root and may not contain '..', a `.git` part (any
case) or a NUL byte; no symbolic link is ever followed, anywhere in a path, even one that points
inside (a model can still see links with run_command). Every lookup starts from a directory fd of
the root: with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) where the
kernel has it (Linux ≥ 5.6), else one name at a time with O_NOFOLLOW and dir fds, so a directory
swapped for a link after a check is refused, not followed. A regular file with more than one hard
link is neither read nor written: its other name may be outside.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from lugh.errors import UserError

_NAME_MAX = 255
_PATH_MAX = 4096

DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO someone planted must not hang; it is refused by fstat right after.
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


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
        root = os.open("/", DIR)
    except OSError:
        return False
    try:
        os.close(openat2(root, b".", DIR))
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


class Beneath:
    """Directory and file fds beneath one worktree root; ToolError, in one sentence, otherwise."""

    def __init__(self, root: Path, *, use_openat2: bool | None = None) -> None:
        self.root = Path(root)
        self.use_openat2 = openat2_available() if use_openat2 is None else use_openat2

    @contextlib.contextmanager
    def dir(self, parts: tuple[str, ...], path: str, *, create: bool = False) -> Iterator[int]:
        """A directory fd for `parts` beneath the root (made, with its parents, if `create`)."""
        root = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = self._open_dir(root, parts, create)
        except OSError as exc:
            raise self.refusal(exc, parts, path) from None
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
                return openat2(root, os.fsencode("/".join(parts)), DIR)
            except FileNotFoundError:
                if not create:
                    raise
        fd = os.dup(root)
        try:
            for name in parts:
                try:
                    next_fd = os.open(name, DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=fd)
                    next_fd = os.open(name, DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def open_file(self, parts: tuple[str, ...], path: str, verb: str) -> int:
        """An fd to read the regular, singly-linked file at `parts`."""
        with self.dir(parts[:-1], path) as dir_fd:
            return self.open_in(dir_fd, parts, path, verb)

    def open_in(self, dir_fd: int, parts: tuple[str, ...], path: str, verb: str) -> int:
        try:
            fd = os.open(parts[-1], READ, dir_fd=dir_fd)
        except OSError as exc:
            raise self.refusal(exc, parts, path) from None
        try:
            check_regular(os.fstat(fd), path, verb)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def refusal(self, exc: OSError, parts: tuple[str, ...], path: str) -> ToolError:
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
