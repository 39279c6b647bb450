"""The file tools on an ordinary worktree: what reading, writing, editing, listing and searching
give the model, and the error results it can recover from."""

import asyncio
import os
import platform
import re
import stat
from pathlib import Path

import pytest

from lugh.agents.files import MAX_MATCHES, ToolError, WorktreeFiles, openat2_available
from tests.conftest import git, make_repo

RESOLVERS = [
    pytest.param(True, id="openat2", marks=pytest.mark.skipif(
        not openat2_available(), reason="this kernel has no openat2"
    )),
    pytest.param(False, id="walk"),
]


@pytest.fixture(params=RESOLVERS)
def files(request: pytest.FixtureRequest, tmp_path: Path) -> WorktreeFiles:
    root = make_repo(tmp_path / "wt", {
        "README.md": "# demo\n",
        "src/app.py": "def main():\n    print('hello')\n    return 0\n",
        "src/util.py": "def helper():\n    return 'hello'\n",
        ".gitignore": "build/\n*.log\n",
    })
    return WorktreeFiles(root, use_openat2=request.param, max_read_bytes=1000, max_write_bytes=5000)


@pytest.mark.skipif(
    tuple(int(n) for n in re.findall(r"\d+", platform.release())[:2]) < (5, 6),
    reason="openat2 came with Linux 5.6",
)
def test_openat2_is_used_where_the_kernel_has_it() -> None:
    # Fails if something (a seccomp filter, say) quietly pushes us onto the fallback walk.
    assert openat2_available()


async def test_reading_a_file_returns_its_text(files: WorktreeFiles) -> None:
    assert await files.read_file("src/app.py") == "def main():\n    print('hello')\n    return 0\n"
    assert await files.read_file("./src//app.py") == await files.read_file("src/app.py")


async def test_reading_a_line_range_returns_only_those_lines(files: WorktreeFiles) -> None:
    assert await files.read_file("src/app.py", 2, 3) == "    print('hello')\n    return 0\n"
    assert await files.read_file("src/app.py", start_line=3) == "    return 0\n"
    assert await files.read_file("src/app.py", end_line=1) == "def main():\n"


async def test_reading_past_the_end_says_how_many_lines_there_are(files: WorktreeFiles) -> None:
    assert await files.read_file("src/app.py", 10, 12) == "'src/app.py' has only 3 lines."


async def test_a_bad_line_range_is_an_error_result(files: WorktreeFiles) -> None:
    with pytest.raises(ToolError, match="end_line .2. comes before start_line .3."):
        await files.read_file("src/app.py", 3, 2)
    with pytest.raises(ToolError, match="start_line must be a whole number from 1"):
        await files.read_file("src/app.py", 0)


async def test_a_large_file_is_cut_at_a_line_with_a_note_on_where_to_read_on(
    files: WorktreeFiles,
) -> None:
    (files.root / "big.txt").write_text("".join(f"line {i:04d}\n" for i in range(1, 501)))
    text = await files.read_file("big.txt")
    shown, _, note = text.rpartition("\n[")
    assert shown.endswith("line 0100\n") and len(shown) <= 1000
    assert note == "Truncated at 1000 bytes of 5000; read on with start_line=101.]"
    assert (await files.read_file("big.txt", 101, 101)) == "line 0101\n"
    assert "read on with start_line=" in await files.read_file("big.txt", 200)


async def test_a_binary_file_is_reported_not_dumped(files: WorktreeFiles) -> None:
    (files.root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100))
    assert await files.read_file("logo.png") == (
        "'logo.png' is a binary file (116 bytes); it is not shown."
    )


async def test_a_directory_or_a_missing_file_is_an_error_result(files: WorktreeFiles) -> None:
    with pytest.raises(ToolError, match="'src' is a directory; use list_files"):
        await files.read_file("src")
    with pytest.raises(ToolError, match="There is no 'src/nope.py' in the worktree."):
        await files.read_file("src/nope.py")
    with pytest.raises(ToolError, match="not a directory"):
        await files.read_file("README.md/x")


async def test_a_fifo_is_refused_without_hanging(files: WorktreeFiles) -> None:
    os.mkfifo(files.root / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        await asyncio.wait_for(files.read_file("pipe"), 10)


async def test_writing_creates_the_file_and_its_parent_directories(files: WorktreeFiles) -> None:
    assert await files.write_file("docs/guide/intro.md", "# Intro\n") == (
        "Created 'docs/guide/intro.md' (8 bytes)."
    )
    assert (files.root / "docs/guide/intro.md").read_text() == "# Intro\n"
    assert not [p for p in files.root.rglob(".lugh-*")]


async def test_writing_replaces_a_file_and_keeps_its_mode(files: WorktreeFiles) -> None:
    script = files.root / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    result = await files.write_file("run.sh", "#!/bin/sh\necho hi\n")
    assert result == "Replaced 'run.sh' (18 bytes)."
    assert script.read_text() == "#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


async def test_writing_more_than_the_limit_is_refused(files: WorktreeFiles) -> None:
    with pytest.raises(ToolError, match="is 5001 bytes; the limit is 5000 bytes per write"):
        await files.write_file("big.txt", "x" * 5001)
    assert not (files.root / "big.txt").exists()


async def test_writing_over_a_directory_is_refused(files: WorktreeFiles) -> None:
    with pytest.raises(ToolError, match="'src' is a directory"):
        await files.write_file("src", "x")


async def test_editing_replaces_the_one_exact_occurrence(files: WorktreeFiles) -> None:
    assert await files.edit_file("src/app.py", "print('hello')", "print('bye')") == (
        "Edited 'src/app.py' at line 2."
    )
    assert (files.root / "src/app.py").read_text() == (
        "def main():\n    print('bye')\n    return 0\n"
    )


async def test_editing_text_that_occurs_several_times_says_how_many_and_where(
    files: WorktreeFiles,
) -> None:
    (files.root / "dup.py").write_text("x = 1\ny = 2\nx = 1\n")
    with pytest.raises(ToolError) as error:
        await files.edit_file("dup.py", "x = 1", "x = 3")
    assert str(error.value) == (
        "old occurs 2 times in 'dup.py' (at lines 1, 3); "
        "include more of the surrounding lines so that it matches exactly once."
    )
    assert (files.root / "dup.py").read_text() == "x = 1\ny = 2\nx = 1\n"


async def test_editing_text_that_is_not_there_says_what_differs(files: WorktreeFiles) -> None:
    with pytest.raises(ToolError, match="matches only if whitespace is ignored"):
        await files.edit_file("src/app.py", "def main():\n  print('hello')", "x")
    with pytest.raises(ToolError, match="its first line appears at line 1, but the rest differs"):
        await files.edit_file("src/app.py", "def main():\n    print('bye')", "x")
    with pytest.raises(ToolError, match="read the file again and copy the text exactly"):
        await files.edit_file("src/app.py", "nothing like it", "x")
    with pytest.raises(ToolError, match="use write_file to create it"):
        await files.edit_file("src/new.py", "a", "b")


async def test_a_file_larger_than_the_write_limit_is_not_edited(files: WorktreeFiles) -> None:
    (files.root / "big.txt").write_text("needle\n" + "x" * 6000)
    with pytest.raises(ToolError, match="larger than the 5000-byte write limit"):
        await files.edit_file("big.txt", "needle", "pin")
    assert (files.root / "big.txt").stat().st_size == 6007


async def test_listing_is_git_aware(files: WorktreeFiles) -> None:
    (files.root / "build").mkdir()
    (files.root / "build/out.js").write_text("x")
    (files.root / "debug.log").write_text("x")
    (files.root / "notes.txt").write_text("untracked but not ignored")
    (files.root / "README.md").unlink()
    assert (await files.list_files()).splitlines() == [
        ".gitignore", "notes.txt", "src/app.py", "src/util.py",
    ]


async def test_listing_filters_by_path_and_glob_pattern(files: WorktreeFiles) -> None:
    (files.root / "src/web").mkdir()
    (files.root / "src/web/page.tsx").write_text("x")
    assert (await files.list_files("src")).splitlines() == [
        "src/app.py", "src/util.py", "src/web/page.tsx",
    ]
    assert (await files.list_files(pattern="*.py")).splitlines() == ["src/app.py", "src/util.py"]
    assert (await files.list_files(pattern="src/*.{py,tsx}")).splitlines() == [
        "src/app.py", "src/util.py",
    ]
    assert (await files.list_files(pattern="**/page.ts?")).splitlines() == ["src/web/page.tsx"]
    assert await files.list_files("src", "*.rs") == "No files under 'src' match '*.rs'."
    with pytest.raises(ToolError, match=r"The pattern '\[z-a\]' is not a valid glob"):
        await files.list_files(pattern="[z-a]")


async def test_listing_outside_a_git_repository_walks_the_directory(tmp_path: Path) -> None:
    (tmp_path / "plain/a").mkdir(parents=True)
    (tmp_path / "plain/a/b.txt").write_text("x")
    (tmp_path / "plain/.git").mkdir()
    (tmp_path / "plain/.git/config").write_text("x")
    assert await WorktreeFiles(tmp_path / "plain").list_files() == "a/b.txt"


async def test_searching_gives_file_line_and_text(files: WorktreeFiles) -> None:
    (files.root / "debug.log").write_text("hello from an ignored file\n")
    (files.root / "blob.bin").write_bytes(b"hello\x00binary")
    assert (await files.search_code(r"hel+o'")).splitlines() == [
        "src/app.py:2:     print('hello')",
        "src/util.py:2:     return 'hello'",
    ]
    assert await files.search_code(r"^def \w+\(\)", "src/util.py") == "src/util.py:1: def helper():"
    assert await files.search_code("zebra") == "No matches for 'zebra'."


async def test_an_invalid_pattern_is_an_error_result(files: WorktreeFiles) -> None:
    with pytest.raises(ToolError, match=r"The pattern 'a\(' cannot be used: .*parenthes"):
        await files.search_code("a(")


async def test_search_results_are_capped(files: WorktreeFiles) -> None:
    for n in range(10):
        (files.root / f"many{n}.txt").write_text("needle\n" * 40)
    lines = (await files.search_code("needle")).splitlines()
    assert len(lines) == MAX_MATCHES + 1
    assert lines[-1] == f"[Stopped at {MAX_MATCHES} matches; narrow the pattern or path.]"


async def test_a_pathological_pattern_stops_at_the_backtracking_limit(
    files: WorktreeFiles,
) -> None:
    (files.root / "evil.txt").write_text("a" * 5000 + "!\n")
    with pytest.raises(ToolError, match="cannot be used: evil.txt: exceeded PCRE's backtracking"):
        await asyncio.wait_for(files.search_code(r"(a|aa)+$"), 30)


async def test_long_lines_are_shortened_in_search_results(files: WorktreeFiles) -> None:
    (files.root / "min.js").write_text("x" * 100_000 + "needle" + "y" * 100_000 + "\n")
    (line,) = (await files.search_code("needle")).splitlines()
    assert line.startswith("min.js:1: xxx") and line.endswith("…") and len(line) < 400


async def test_a_tracked_file_removed_from_the_worktree_is_not_listed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {f"pkg/m{i}.py": "" for i in range(30)})
    git(repo, "rm", "-q", "pkg/m0.py")
    listed = (await WorktreeFiles(repo).list_files("pkg")).splitlines()
    assert len(listed) == 29 and "pkg/m0.py" not in listed
