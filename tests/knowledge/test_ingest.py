import pytest

from lugh.errors import UserError
from tests.conftest import git, make_repo

GUIDE = """# Guide

## Install

Download the installer and run it once.

## Configure

Set the harbour name in the settings file.

## Run

Start the service and watch the tides.
"""

REFUSE_POISON = """
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.content LIKE '%POISON%' THEN
        RAISE EXCEPTION 'the disk refused chunk %', NEW.ordinal;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON chunks
    FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


async def paths(pool) -> list[str]:
    return sorted(await pool.fetchval("SELECT coalesce(array_agg(path), '{}') FROM documents"))


async def snapshot(pool) -> list[tuple]:
    rows = await pool.fetch(
        "SELECT c.id, c.content_hash, d.id, d.content_hash, d.updated_at"
        " FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id"
    )
    return [tuple(r) for r in rows]


async def test_a_folder_in_a_git_repository_is_read_as_git_sees_it(
    knowledge, project, pool, tmp_path
):
    repo = make_repo(tmp_path / "site", {
        ".gitignore": "secret/\n*.log\n",
        "README.md": "# Site\n\nThe harbour website.\n",
        "src/app.py": "def main():\n    print('tides')\n",
        "node_modules/left-pad/index.js": "module.exports = (s) => s;\n",
        "package-lock.json": "{}\n",
    })
    (repo / "secret").mkdir()
    (repo / "secret" / "plans.md").write_text("# Plans\n\nNot for the index.\n")
    (repo / "debug.log").write_text("noise\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "new.md").write_text("# New\n\nWritten but not committed yet.\n")

    result = await knowledge.ingest_paths(project, [repo])

    assert await paths(pool) == ["README.md", "docs/new.md", "src/app.py"]
    assert result.documents == 3 and result.skipped == []
    source = await pool.fetchrow("SELECT kind, uri FROM sources")
    assert tuple(source) == ("folder", str(repo.resolve()))


async def test_a_folder_outside_git_is_walked_without_vendored_directories(
    knowledge, project, pool, docs, embedder
):
    folder = docs({
        "a.md": "# A\n\nAlpha.\n",
        "sub/b.txt": "Beta.\n",
        "node_modules/x/index.js": "module.exports = 1;\n",
        ".venv/lib/site.py": "x = 1\n",
        "vendor/lib.go": "package lib\n",
        "yarn.lock": "# lock\n",
    })

    result = await knowledge.ingest_paths(project, [folder])

    assert await paths(pool) == ["a.md", "sub/b.txt"]
    assert result.chunks == 2
    assert embedder.calls == 1, "small documents are embedded together"


async def test_re_ingesting_unchanged_files_writes_nothing_and_embeds_nothing(
    knowledge, project, pool, docs, embedder
):
    folder = docs({"guide.md": GUIDE, "notes.txt": "Tide tables are printed weekly.\n"})
    await knowledge.ingest_paths(project, [folder])
    before, calls = await snapshot(pool), embedder.calls

    result = await knowledge.ingest_paths(project, [folder])

    assert (result.documents, result.unchanged, result.chunks) == (0, 2, 0)
    assert await snapshot(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM sources") == 1
    assert embedder.calls == calls


async def test_a_changed_file_has_its_chunks_replaced_and_only_new_text_embedded(
    knowledge, project, pool, docs, embedder
):
    folder = docs({"guide.md": GUIDE})
    await knowledge.ingest_paths(project, [folder])
    document_id = await pool.fetchval("SELECT id FROM documents")
    embedder.texts.clear()

    (folder / "guide.md").write_text(GUIDE.replace("watch the tides", "check the moorings"))
    result = await knowledge.ingest_paths(project, [folder])

    assert (result.documents, result.chunks) == (1, 3)
    assert len(embedder.texts) == 1 and "check the moorings" in embedder.texts[0]
    contents = await pool.fetchval("SELECT string_agg(content, '|' ORDER BY ordinal) FROM chunks")
    assert "check the moorings" in contents and "watch the tides" not in contents
    assert await pool.fetchval("SELECT id FROM documents") == document_id


async def test_a_file_deleted_from_a_folder_is_removed_on_the_next_ingest(
    knowledge, project, pool, docs
):
    folder = docs({"keep.md": "# Keep\n\nStays.\n", "gone.md": "# Gone\n\nGoes.\n"})
    await knowledge.ingest_paths(project, [folder])
    (folder / "gone.md").unlink()

    result = await knowledge.ingest_paths(project, [folder])

    assert result.removed == 1
    assert await paths(pool) == ["keep.md"]
    assert await pool.fetchval("SELECT count(*) FROM chunks WHERE content LIKE '%Goes%'") == 0


async def test_a_failure_in_the_middle_of_a_document_leaves_nothing_of_it(
    knowledge, project, pool, docs
):
    await pool.execute(REFUSE_POISON)
    folder = docs({
        "a-bad.md": GUIDE + "\n## Trouble\n\nThis section is POISON for the disk.\n",
        "b-good.md": "# Good\n\nStored as usual.\n",
    })

    result = await knowledge.ingest_paths(project, [folder])

    assert await paths(pool) == ["b-good.md"]
    [skipped] = result.skipped
    assert skipped.reason == (
        "a-bad.md could not be stored (the disk refused chunk 3); nothing of it was written, "
        "so ingest it again once that is fixed."
    )
    assert result.documents == 1


async def test_a_failed_update_keeps_the_previous_version_whole(knowledge, project, pool, docs):
    folder = docs({"guide.md": GUIDE})
    await knowledge.ingest_paths(project, [folder])
    before = await snapshot(pool)
    await pool.execute(REFUSE_POISON)

    (folder / "guide.md").write_text(GUIDE + "\n## Trouble\n\nPOISON.\n")
    result = await knowledge.ingest_paths(project, [folder])

    assert "could not be stored" in result.skipped[0].reason
    assert result.removed == 0
    assert await snapshot(pool) == before


async def test_progress_is_reported_per_document_with_chunk_counts(knowledge, project, docs):
    folder = docs({"a.md": GUIDE, "b.txt": "Short.\n", "c.md": ""})
    seen = []

    await knowledge.ingest_paths(project, [folder], on_progress=seen.append)

    assert [(p.done, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p.path for p in seen) == ["a.md", "b.txt", "c.md"]
    assert seen[-1].chunks == 4
    assert [p.chunks for p in seen] == sorted(p.chunks for p in seen)


async def test_a_source_can_be_removed_with_everything_ingested_from_it(
    knowledge, project, pool, docs
):
    first = docs({"a.md": "# A\n\nAlpha.\n"}, name="first")
    second = docs({"b.md": "# B\n\nBeta.\n"}, name="second")
    await knowledge.ingest_paths(project, [first, second])

    await knowledge.remove_source(project, str(first.resolve()))

    assert await paths(pool) == ["b.md"]
    assert [s.uri for s in await knowledge.sources(project)] == [str(second.resolve())]
    with pytest.raises(UserError, match="has no source '/nowhere'"):
        await knowledge.remove_source(project, "/nowhere")


async def test_the_projects_own_repository_is_ingested_as_a_repo_source(knowledge, project, pool):
    result = await knowledge.ingest_repository(project)

    assert result.documents == 1
    source = await pool.fetchrow("SELECT kind FROM sources")
    assert source["kind"] == "repo"
    assert await paths(pool) == ["README.md"]


async def test_an_upload_sent_again_under_the_same_name_replaces_the_first(
    knowledge, project, pool
):
    await knowledge.ingest_bytes(
        project, "../../etc/minutes.md", b"# Minutes\n\nWe met on Monday.\n"
    )
    await knowledge.ingest_bytes(project, "minutes.md", b"# Minutes\n\nWe met on Tuesday.\n")

    assert await paths(pool) == ["minutes.md"]
    assert await pool.fetchval("SELECT uri FROM sources") == "upload:minutes.md"
    assert "Tuesday" in await pool.fetchval("SELECT content FROM chunks")


async def test_text_is_ingested_as_markdown_under_its_title(knowledge, project, pool):
    text = "## Decision\n\nWe chose Postgres.\n"

    result = await knowledge.ingest_text(project, text, title="ADR 1")

    assert result.documents == 1
    row = await pool.fetchrow("SELECT path, kind, title FROM documents")
    assert tuple(row) == ("ADR 1.md", "markdown", "ADR 1")


async def test_ingesting_into_a_project_that_does_not_exist_is_refused(knowledge):
    with pytest.raises(UserError, match="There is no project named 'ghost'."):
        await knowledge.ingest_bytes("ghost", "a.md", b"# A\n")


async def test_a_tracked_file_removed_from_the_work_tree_is_not_read(
    knowledge, project, pool, tmp_path
):
    repo = make_repo(tmp_path / "r", {"a.md": "# A\n\nAlpha.\n", "b.md": "# B\n\nBeta.\n"})
    (repo / "b.md").unlink()
    git(repo, "status")

    result = await knowledge.ingest_paths(project, [repo])

    assert await paths(pool) == ["a.md"]
    assert result.skipped == []
