import subprocess
from pathlib import Path

import pytest

from lugh import git
from lugh.errors import UserError
from tests.conftest import git as plain_git
from tests.conftest import make_repo


async def test_a_repository_top_directory_is_a_repo(repo):
    assert await git.is_repo(repo)
    assert await git.has_commits(repo)


async def test_a_plain_directory_a_subdirectory_and_a_missing_path_are_not_repos(repo, tmp_path):
    (tmp_path / "plain").mkdir()
    (repo / "sub").mkdir()

    assert not await git.is_repo(tmp_path / "plain")
    assert not await git.is_repo(repo / "sub")
    assert not await git.is_repo(tmp_path / "missing")
    assert await git.work_tree_root(repo / "sub") == repo.resolve()


async def test_a_freshly_initialised_repository_has_no_commits(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    plain_git(empty, "init", "-q")

    assert await git.is_repo(empty)
    assert not await git.has_commits(empty)


async def test_the_default_branch_of_a_local_repo_is_the_checked_out_one(repo, tmp_path):
    trunk = make_repo(tmp_path / "trunk", branch="trunk")

    assert await git.default_branch(repo) == "main"
    assert await git.default_branch(trunk) == "trunk"


async def test_a_detached_head_has_no_default_branch(repo):
    plain_git(repo, "checkout", "-q", "--detach")

    with pytest.raises(git.GitError, match="detached HEAD"):
        await git.default_branch(repo)


async def test_the_default_branch_of_a_clone_is_the_remote_head(tmp_path):
    source = make_repo(tmp_path / "source", branch="trunk")

    clone = await git.clone(source.as_uri(), tmp_path / "clone")
    plain_git(clone, "checkout", "-q", "-b", "elsewhere")

    assert (clone / "README.md").read_text() == "# demo\n"
    assert await git.default_branch(clone, remote="origin") == "trunk"
    assert await git.default_branch(clone) == "elsewhere"


async def test_a_local_path_can_be_cloned(repo, tmp_path):
    clone = await git.clone(str(repo), tmp_path / "copy")

    assert await git.resolve_commit(clone, "HEAD") == plain_git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/owner/repo.git",
        "ssh://git@github.com/owner/repo.git",
        "git@github.com:owner/repo.git",
        "file:///srv/git/repo",
        "/srv/git/repo",
    ],
)
def test_https_ssh_and_local_sources_are_accepted(url):
    assert git.validate_clone_source(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% canary",
        "fd::17",
        "http://example.com/repo.git",
        "git://example.com/repo.git",
        "ftp://example.com/repo.git",
        "--upload-pack=touch canary",
        "-u touch canary",
        "ssh://-oProxyCommand=touch%20canary/repo",
        "git@-oProxyCommand=touch:repo",
        "relative/path",
        "file://otherhost/repo",
        "https://example.com/repo.git\n",
        "",
    ],
)
async def test_other_sources_are_refused_before_git_runs(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(git.InvalidCloneSource) as raised:
        await git.clone(url, tmp_path / "dest")

    assert str(raised.value).endswith(".") and "\n" not in str(raised.value)
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "canary").exists()


def test_the_ext_canary_would_appear_if_git_were_allowed_to_run_it(tmp_path):
    subprocess.run(
        ["git", "-c", "protocol.ext.allow=always", "clone", "-q", "--",
         f"ext::sh -c touch% {tmp_path / 'canary'}", str(tmp_path / "dest")],
        cwd=tmp_path, capture_output=True,
    )

    assert (tmp_path / "canary").exists()


async def test_the_ext_transport_stays_off_when_called_directly_even_if_the_user_allows_it(
    tmp_path, monkeypatch
):
    canary = tmp_path / "canary"
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".gitconfig").write_text('[protocol "ext"]\n\tallow = always\n')
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    with pytest.raises(git.GitError):
        await git.run("clone", "-q", "--", f"ext::sh -c touch% {canary}", "dest", cwd=tmp_path)

    assert not canary.exists()


async def test_cloning_into_an_existing_directory_is_refused_and_leaves_it_alone(repo, tmp_path):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")

    with pytest.raises(UserError, match="already exists"):
        await git.clone(str(repo), dest)

    assert (dest / "keep.txt").read_text() == "mine"


async def test_a_failing_clone_leaves_nothing_behind_and_says_why(tmp_path):
    with pytest.raises(git.GitError) as raised:
        await git.clone((tmp_path / "nowhere").as_uri(), tmp_path / "dest")

    message = str(raised.value)
    assert message.startswith("Cloning file://")
    assert "does not appear to be a git repository" in message
    assert not (tmp_path / "dest").exists()


async def test_a_failing_clone_never_shows_the_credentials_in_its_url(tmp_path):
    with pytest.raises(git.GitError) as raised:
        await git.clone("https://owner:s3cret@127.0.0.1:1/repo.git", tmp_path / "dest")

    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in raised.value.stderr + " ".join(raised.value.command)
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://owner:s3cret@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://ghp_t0ken@github.com:443/o/r.git", "https://github.com:443/o/r.git"),
        ("ssh://git:s3cret@example.com/r.git", "ssh://git@example.com/r.git"),
        ("ssh://git@example.com/r.git", "ssh://git@example.com/r.git"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("file:///srv/r.git", "file:///srv/r.git"),
    ],
)
def test_a_clone_keeps_its_origin_without_the_secrets_of_its_url(url, kept):
    assert git.without_credentials(url) == kept
