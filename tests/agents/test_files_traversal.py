"""Nothing outside the worktree is ever read or written through the file tools: a fixed corpus of
escapes, Hypothesis-made paths, and a directory swapped for a link while writes run."""

import asyncio
import contextlib
import ctypes
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lugh.agents.files import ToolError, WorktreeFiles, openat2_available
from tests.conftest import make_repo

CANARY = "CANARY-7f3a9c1e-never-to-be-shown"
WRITTEN = "WRITTEN-BY-THE-TOOL"

RESOLVERS = [
    pytest.param(True, id="openat2", marks=pytest.mark.skipif(
        not openat2_available(), reason="this kernel has no openat2"
    )),
    pytest.param(False, id="walk"),
]


class Scene:
    """A worktree with every kind of way out planted in it, and canaries outside."""

    def __init__(self, base: Path, use_openat2: bool) -> None:
        self.base = base
        self.outside = base / "outside"
        self.outside.mkdir()
        for name in ("canary.txt", "hard-canary.txt"):
            (self.outside / name).write_text(CANARY + "\n")
        (base / "x").write_text(CANARY + "\n")
        self.root = make_repo(base / "wt", {"src/app.py": "print('hi')\n", "a/b.txt": "b\n"})
        (self.root / "link_out").symlink_to(self.outside)
        (self.root / "link_file").symlink_to(self.outside / "canary.txt")
        (self.root / "link_etc").symlink_to("/etc")
        (self.root / "link_in").symlink_to("src")
        (self.root / "a/link_up").symlink_to("../..")
        os.link(self.outside / "hard-canary.txt", self.root / "hard.txt")
        self.files = WorktreeFiles(self.root, use_openat2=use_openat2)
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, str]:
        """Every file outside the worktree (under the test's dir and in /etc's top level)."""
        found = {}
        for where in (self.base, Path("/etc")):
            for dirpath, dirnames, filenames in os.walk(where):
                if Path(dirpath) == self.base:
                    dirnames.remove("wt")
                if where == Path("/etc"):
                    dirnames.clear()
                for name in filenames:
                    path = Path(dirpath, name)
                    try:
                        found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                    except OSError:
                        found[str(path)] = "unreadable"
        return found

    async def attempt(self, path: str) -> list[str]:
        """Every tool on `path`; what each returned (text or error sentence)."""
        results = []
        calls = [
            lambda: self.files.read_file(path),
            lambda: self.files.read_file(path, 1, 3),
            lambda: self.files.write_file(path, WRITTEN),
            lambda: self.files.edit_file(path, "CANARY", WRITTEN),
            lambda: self.files.edit_file(path, "print", WRITTEN),
            lambda: self.files.list_files(path),
            lambda: self.files.list_files(pattern=path),
            lambda: self.files.search_code("CANARY", path),
        ]
        for call in calls:
            try:
                results.append(await call())
            except ToolError as error:
                results.append(str(error))
        return results

    def assert_untouched(self, results: list[str]) -> None:
        assert not [r for r in results if CANARY in r]
        assert self.snapshot() == self.before


@pytest.fixture(params=RESOLVERS)
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Scene:
    return Scene(tmp_path, request.param)


@pytest.fixture(scope="module", params=RESOLVERS)
def shared_scene(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """One scene for many attempts: the worktree collects their writes, the outside must not."""
    return Scene(tmp_path_factory.mktemp("scene"), request.param)


ESCAPES = [
    "../x", "../outside/canary.txt", "/etc/passwd", "/etc/lugh-canary", "a/../../x",
    "a/../../outside/canary.txt", "src/../../x", "link_out/canary.txt", "link_out/new.txt",
    "link_out", "link_file", "link_etc/passwd", "link_etc/lugh-canary", "link_etc",
    "a/link_up/x", "a/link_up/outside/canary.txt", "link_in/app.py", "hard.txt",
    ".git/config", ".git", ".git/hooks/post-commit", "src/.git/x", ".GIT/config", "a/.Git",
    "a\x00b", "link_out\x00", "x" * 300, "a/" * 2100 + "b", "\ud800", "..", ".", "", "/",
    "//etc/passwd", "~/../x",
]


@pytest.mark.parametrize("path", ESCAPES, ids=lambda p: repr(p)[:40])
async def test_no_escape_reaches_outside_the_worktree(shared_scene: Scene, path: str) -> None:
    shared_scene.assert_untouched(await shared_scene.attempt(path))


async def test_the_refusals_say_why_in_one_sentence(scene: Scene) -> None:
    async def refusal(path: str) -> str:
        with pytest.raises(ToolError) as error:
            await scene.files.read_file(path)
        return str(error.value)

    assert await refusal("../x") == (
        "The path '../x' is refused because it contains '..'; "
        "name files from the worktree root instead."
    )
    assert "because it is absolute" in await refusal("/etc/passwd")
    assert await refusal("link_etc/passwd") == (
        "The path 'link_etc/passwd' is refused because 'link_etc' is a symbolic link, "
        "and the file tools never follow links; use the real path."
    )
    assert "'link_in' is a symbolic link" in await refusal("link_in/app.py")
    assert "has 2 hard links" in await refusal("hard.txt")
    assert "because .git is off limits" in await refusal(".git/config")
    assert "contains a NUL byte" in await refusal("a\x00b")
    assert "too long" in await refusal("x" * 300)
    assert "not valid UTF-8" in await refusal("\ud800")


async def test_writing_to_a_link_replaces_nothing_outside_and_is_refused(scene: Scene) -> None:
    with pytest.raises(ToolError, match="never write through links"):
        await scene.files.write_file("link_file", WRITTEN)
    with pytest.raises(ToolError, match="has 2 hard links"):
        await scene.files.write_file("hard.txt", WRITTEN)
    scene.assert_untouched([])


async def test_unicode_names_inside_the_worktree_work(scene: Scene) -> None:
    await scene.files.write_file("dönüş/文件 名.txt", "ünïcødé\n")
    assert await scene.files.read_file("dönüş/文件 名.txt") == "ünïcødé\n"
    assert "dönüş/文件 名.txt" in (await scene.files.list_files()).splitlines()


SEGMENTS = st.sampled_from([
    "..", ".", "", "a", "b.txt", "src", "app.py", "link_out", "link_file", "link_etc", "link_in",
    "link_up", "hard.txt", "canary.txt", "outside", "x", "wt", ".git", ".GIT", "hooks", "config",
    "etc", "passwd", "~", "\x00", "ü", "*", "**", "-rf", " ", "\\", "%2e%2e",
])
PATHS = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["", "", "/", "./", "../", "//"]),
    st.lists(SEGMENTS, max_size=6),
)


@settings(max_examples=60, deadline=None)
@given(path=PATHS)
def test_generated_paths_never_read_or_write_outside(shared_scene: Scene, path: str) -> None:
    shared_scene.assert_untouched(asyncio.run(shared_scene.attempt(path)))


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): each always names something."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2 failed")


@contextlib.contextmanager
def flipping(a: Path, b: Path) -> Iterator[list[int]]:
    """Swap `a` and `b` as fast as a thread can while the body runs."""
    stop = threading.Event()
    flips = [0]

    def flip() -> None:
        while not stop.is_set():
            exchange(a, b)
            flips[0] += 1
            time.sleep(0)  # hand over the GIL, or each tool call waits out a switch interval

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    try:
        yield flips
    finally:
        stop.set()
        thread.join(10)


async def test_a_directory_swapped_for_a_link_during_writes_never_lets_one_out(
    scene: Scene,
) -> None:
    (scene.root / "swap").mkdir()
    (scene.root / "swap.link").symlink_to(scene.outside)
    outcomes = {"written": 0, "refused": 0}
    with flipping(scene.root / "swap", scene.root / "swap.link") as flips:
        for n in range(300):
            try:
                await scene.files.write_file(f"swap/f{n}.txt", WRITTEN)
                outcomes["written"] += 1
            except ToolError as error:
                assert "symbolic link" in str(error) or "not a directory" in str(error)
                outcomes["refused"] += 1
            try:
                assert CANARY not in await scene.files.read_file("swap/canary.txt")
            except ToolError:
                pass
    assert flips[0] > 0 and sum(outcomes.values()) == 300
    assert not list(scene.outside.glob("f*.txt"))
    scene.assert_untouched([])


async def test_a_file_swapped_for_a_link_during_writes_is_replaced_not_written_through(
    scene: Scene,
) -> None:
    target, link = scene.root / "target.txt", scene.root / "target.link"
    target.write_text("inside\n")
    link.symlink_to(scene.outside / "canary.txt")
    with flipping(target, link) as flips:
        for _ in range(300):
            for call in (
                scene.files.write_file("target.txt", WRITTEN),
                scene.files.edit_file("target.txt", "inside", WRITTEN),
                scene.files.read_file("target.txt"),
            ):
                try:
                    assert CANARY not in await call
                except ToolError:
                    pass
    assert flips[0] > 0
    scene.assert_untouched([])
