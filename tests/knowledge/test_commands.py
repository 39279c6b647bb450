"""`lugh ingest` and `lugh ask` against this test's database (registered here as `lugh/cli.py`
will register them)."""

import pytest
import typer
from typer.testing import CliRunner

from lugh.knowledge import cli as knowledge_cli
from tests.fakes.anthropic import API_KEY, FakeAnthropic, turn
from tests.knowledge.test_bad_input import encrypted_pdf

app = typer.Typer()
app.command()(knowledge_cli.ingest)
app.command()(knowledge_cli.ask)


@pytest.fixture
def run(database, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("LUGH_DATA_DIR", str(tmp_path / "data"))

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    return invoke


@pytest.fixture
def registered(pool, project):
    return project


def test_ingest_prints_a_summary_with_each_skipped_file_and_its_reason(run, registered, docs):
    folder = docs({
        "guide.md": "# Guide\n\nThe harbour opens at dawn.\n",
        "notes.txt": "Fuel is sold at the south quay.\n",
        "scan.pdf": encrypted_pdf(),
    })

    result = run("ingest", str(folder), "--project", registered)

    assert result.exit_code == 0, result.output
    assert "✓ 2 documents ingested (2 chunks)." in result.output
    assert "! 1 file skipped:" in result.output
    assert "  - scan.pdf is protected by a password; remove the password and ingest it again." in (
        result.output
    )

    again = run("ingest", str(folder), "--project", registered)

    assert "✓ 0 documents ingested (0 chunks), 2 unchanged." in again.output


def test_ask_prints_the_best_passages_with_their_sources(run, registered, docs):
    folder = docs({"fuel.md": "# Fuel\n\nDiesel is sold at the south quay until six.\n"})
    run("ingest", str(folder), "--project", registered)

    result = run("ask", "Where is diesel sold?", "--project", registered)

    assert result.exit_code == 0, result.output
    assert "No language model is configured" in result.output
    assert f"[1] {folder.resolve()}/fuel.md › Fuel, lines 1-3" in result.output


def test_ask_with_a_model_prints_its_answer_and_then_each_source(
    run, registered, docs, monkeypatch
):
    folder = docs({"fuel.md": "# Fuel\n\nDiesel is sold at the south quay until six.\n"})
    run("ingest", str(folder), "--project", registered)

    with FakeAnthropic() as fake:
        fake.script(turn("At the south quay, until six [1]."))
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        result = run("ask", "Where is diesel sold?", "--project", registered)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("At the south quay, until six [1].\n\nSources:\n")
    assert f"  [1] {folder.resolve()}/fuel.md › Fuel, lines 1-3" in result.output


def test_a_project_that_does_not_exist_is_one_sentence_and_a_failing_exit(run, registered, docs):
    result = run("ask", "Where is diesel sold?", "--project", "ghost")

    assert result.exit_code == 1
    assert "There is no project named 'ghost'." in result.output
