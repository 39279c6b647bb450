import asyncio
from pathlib import Path

import pytest

from lugh.errors import AlreadyExists, NotFound, UserError
from lugh.git import InvalidCloneSource
from lugh.projects import InvalidName
from tests.conftest import git as plain_git
from tests.conftest import make_repo


async def count_projects(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM projects")


def entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


async def test_a_local_repository_is_registered_in_place_with_its_checked_out_branch(
    projects, repo
):
    project = await projects.register("demo", str(repo))

    assert project.name == "demo"
    assert project.repo_path == repo.resolve()
    assert project.default_branch == "main"
    assert not project.cloned and project.repo == str(repo.resolve())
    assert await projects.get("demo") == project
    assert await projects.list() == [project]


async def test_a_repository_on_trunk_is_registered_with_trunk_as_its_default_branch(
    projects, tmp_path
):
    trunk = make_repo(tmp_path / "service", branch="trunk")

    project = await projects.register("service", str(trunk))

    assert project.default_branch == "trunk"


async def test_a_file_url_is_cloned_into_the_data_dir(projects, data_dir, tmp_path):
    source = make_repo(tmp_path / "upstream", {"app.py": "print('hi')\n"}, branch="trunk")

    project = await projects.register("upstream", source.as_uri())

    assert project.cloned and project.repo_url == source.as_uri()
    assert project.repo_path == data_dir / "repos" / "upstream"
    assert (project.repo_path / "app.py").read_text() == "print('hi')\n"
    assert project.default_branch == "trunk"
    assert entries(data_dir / "repos") == ["upstream"]


@pytest.mark.parametrize(
    "name", ["My Project", "Demo", "a b", "$(touch canary)", "x;touch canary", "../etc", "-rf",
             ".hidden", "", "x" * 64]
)
async def test_a_bad_project_name_is_refused_in_one_sentence_and_nothing_is_stored(
    projects, pool, repo, tmp_path, monkeypatch, name
):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InvalidName) as raised:
        await projects.register(name, str(repo))

    assert "is not a valid project name" in str(raised.value)
    assert str(raised.value).endswith(".") and "\n" not in str(raised.value)
    assert await count_projects(pool) == 0
    assert not (tmp_path / "canary").exists()


async def test_a_directory_that_is_not_a_git_repository_is_refused(projects, pool, tmp_path):
    (tmp_path / "plain").mkdir()

    with pytest.raises(UserError, match="is not a git repository"):
        await projects.register("plain", str(tmp_path / "plain"))

    assert await count_projects(pool) == 0


async def test_a_path_that_does_not_exist_is_refused(projects, tmp_path):
    with pytest.raises(UserError, match="There is no directory at"):
        await projects.register("ghost", str(tmp_path / "ghost"))


@pytest.mark.parametrize("repo", ["", "   ", "a\x00b"])
async def test_an_empty_or_malformed_repository_argument_is_refused(projects, pool, repo):
    with pytest.raises(UserError, match="Give the path of a git repository"):
        await projects.register("demo", repo)

    assert await count_projects(pool) == 0


async def test_a_subdirectory_of_a_repository_is_refused_naming_the_repository(projects, repo):
    (repo / "src").mkdir()

    with pytest.raises(UserError, match=f"register {repo.resolve()} instead"):
        await projects.register("src", str(repo / "src"))


async def test_a_repository_without_commits_is_refused(projects, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    plain_git(empty, "init", "-q")

    with pytest.raises(UserError, match="has no commits yet"):
        await projects.register("empty", str(empty))


async def test_a_repository_with_a_detached_head_is_refused(projects, repo):
    plain_git(repo, "checkout", "-q", "--detach")

    with pytest.raises(UserError, match="detached HEAD"):
        await projects.register("demo", str(repo))


async def test_a_duplicate_name_is_refused_and_the_first_project_kept(projects, repo, tmp_path):
    first = await projects.register("demo", str(repo))
    other = make_repo(tmp_path / "other")

    with pytest.raises(AlreadyExists, match="A project named 'demo' already exists."):
        await projects.register("demo", str(other))
    with pytest.raises(AlreadyExists):
        await projects.register("demo", other.as_uri())

    assert await projects.list() == [first]


async def test_the_same_repository_cannot_be_registered_under_two_names(projects, repo):
    await projects.register("demo", str(repo))

    with pytest.raises(AlreadyExists, match="already registered as project 'demo'"):
        await projects.register("demo2", str(repo))


async def test_a_failing_clone_leaves_no_row_and_no_directory(projects, pool, data_dir, tmp_path):
    with pytest.raises(UserError, match="Cloning file://"):
        await projects.register("missing", (tmp_path / "nowhere").as_uri())

    assert await count_projects(pool) == 0
    assert entries(data_dir / "repos") == []


async def test_cloning_a_repository_without_commits_leaves_no_row_and_no_directory(
    projects, pool, data_dir, tmp_path
):
    empty = tmp_path / "empty"
    empty.mkdir()
    plain_git(empty, "init", "-q")

    with pytest.raises(UserError, match="has no commits yet"):
        await projects.register("empty", empty.as_uri())

    assert await count_projects(pool) == 0
    assert entries(data_dir / "repos") == []


async def test_an_ext_url_is_refused_and_nothing_is_executed(
    projects, pool, data_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "canary"

    with pytest.raises(InvalidCloneSource, match="'ext::' addresses are not among them"):
        await projects.register("evil", f"ext::sh -c touch% {canary}")

    assert not canary.exists()
    assert await count_projects(pool) == 0
    assert entries(data_dir / "repos") == []


async def test_removing_a_cloned_project_deletes_its_clone(projects, pool, data_dir, tmp_path):
    source = make_repo(tmp_path / "upstream")
    project = await projects.register("upstream", source.as_uri())

    removed = await projects.remove("upstream")

    assert removed == project
    assert not project.repo_path.exists()
    assert await count_projects(pool) == 0
    assert (source / "README.md").exists()


async def test_removing_a_local_project_never_touches_its_repository(projects, repo):
    head = plain_git(repo, "rev-parse", "HEAD")
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    await projects.register("demo", str(repo))

    await projects.remove("demo")

    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before
    assert plain_git(repo, "rev-parse", "HEAD") == head
    with pytest.raises(NotFound):
        await projects.get("demo")


async def test_removing_a_project_removes_its_agents(projects, agents, pool, repo):
    await projects.register("demo", str(repo))
    await agents.spawn("demo", "ada")

    await projects.remove("demo")

    assert await pool.fetchval("SELECT count(*) FROM agents") == 0


async def test_an_unknown_project_is_named_in_the_refusal(projects):
    with pytest.raises(NotFound, match="There is no project named 'nope'."):
        await projects.get("nope")
    with pytest.raises(NotFound, match="There is no project named 'nope'."):
        await projects.remove("nope")


async def test_two_clones_racing_for_one_name_leave_one_project_and_one_directory(
    projects, pool, data_dir, tmp_path
):
    first, second = make_repo(tmp_path / "first"), make_repo(tmp_path / "second")

    results = await asyncio.gather(
        projects.register("twin", first.as_uri()),
        projects.register("twin", second.as_uri()),
        return_exceptions=True,
    )

    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], AlreadyExists)
    assert await count_projects(pool) == 1
    assert entries(data_dir / "repos") == ["twin"]


async def test_a_clone_left_without_a_project_by_a_crash_is_replaced(projects, data_dir, tmp_path):
    leftover = data_dir / "repos" / "upstream"
    leftover.mkdir(parents=True)
    (leftover / "stale.txt").write_text("from before the crash")
    source = make_repo(tmp_path / "upstream")

    project = await projects.register("upstream", source.as_uri())

    assert (project.repo_path / "README.md").exists()
    assert not (project.repo_path / "stale.txt").exists()


async def test_projects_are_listed_by_name(projects, tmp_path):
    for name in ("zeta", "alpha", "mid"):
        await projects.register(name, str(make_repo(tmp_path / name)))

    assert [p.name for p in await projects.list()] == ["alpha", "mid", "zeta"]
