import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lugh import git
from tests.conftest import git as plain_git
from tests.conftest import make_repo

SHELL_TRAPS = (
    "$(touch canary)",
    "`touch canary`",
    "; rm -rf ~",
    "a;touch canary",
    "a&&touch canary",
    "a|touch canary",
    "a>canary",
    "-delete",
    "--force",
    "-D",
    "a b",
    "a\nb",
    "a'b",
    'a"b',
)
GIT_REFUSES = ("", "a..b", ".hidden", "a/.b", "x.lock", "a/b.lock/c", "a/", "/a", "a//b", "a.",
               "HEAD", "@", "a@{u}", "a~1", "a^", "a:b", "a?", "a*", "a[x", "a\\b", "a\x7f")


@pytest.mark.parametrize(
    "name",
    ["main", "trunk", "master", "feature/login", "lugh/12-add-login", "release-1.2", "v1_rc"],
)
def test_ordinary_branch_names_are_accepted(name):
    assert git.validate_branch_name(name) == name


@pytest.mark.parametrize("name", SHELL_TRAPS + GIT_REFUSES + ("ünïcode", "x" * 201))
def test_dangerous_or_malformed_branch_names_are_refused_in_one_sentence(name):
    with pytest.raises(git.InvalidBranchName) as raised:
        git.validate_branch_name(name)

    message = str(raised.value)
    assert message.startswith("The branch name ") and message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize("name", SHELL_TRAPS)
async def test_a_branch_name_with_shell_metacharacters_executes_nothing_and_creates_nothing(
    repo, tmp_path, monkeypatch, name
):
    monkeypatch.chdir(tmp_path)
    before = plain_git(repo, "branch", "--list")

    with pytest.raises(git.InvalidBranchName):
        await git.create_branch(repo, name)
    with pytest.raises(git.InvalidBranchName):
        await git.branch_exists(repo, name)

    assert not (tmp_path / "canary").exists() and not (repo / "canary").exists()
    assert plain_git(repo, "branch", "--list") == before


async def test_a_valid_branch_is_created_and_found(repo):
    await git.create_branch(repo, "lugh/7-fix-typo")

    assert await git.branch_exists(repo, "lugh/7-fix-typo")
    assert not await git.branch_exists(repo, "lugh/8-other")


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("refs") / "repo")


@settings(max_examples=150, deadline=None)
@given(name=st.text(alphabet=st.sampled_from("ab/._-$;(){}` ~^:?*[\\@\n\t'\"&|<>!#"), max_size=16))
def test_every_name_we_accept_git_accepts_too(scratch_repo, name):
    if not git.is_valid_branch_name(name):
        return
    checked = subprocess.run(
        ["git", "check-ref-format", "--branch", name], cwd=scratch_repo, capture_output=True
    )
    assert checked.returncode == 0, name
