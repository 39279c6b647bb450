"""The tool contract (DESIGN §6), argument checking, and the risk of each call."""

from __future__ import annotations

from pathlib import Path

import pytest

from lugh.agents.files import WorktreeFiles
from lugh.agents.loop import unanswered
from lugh.agents.plan import PROPOSE_PLAN
from lugh.agents.sandbox import make_sandbox
from lugh.agents.tools import SPECS, WORK_TOOLS, Risk, ToolBox, ToolInputError, check_input

# The contract: name → (required arguments, optional arguments).
CONTRACT = {
    "read_file": ({"path"}, {"start_line", "end_line"}),
    "write_file": ({"path", "content"}, set()),
    "edit_file": ({"path", "old", "new"}, set()),
    "list_files": (set(), {"path", "pattern"}),
    "search_code": ({"pattern"}, {"path"}),
    "run_command": ({"command"}, {"timeout_s"}),
    "query_knowledge": ({"query"}, {"k"}),
    "remember": ({"content"}, {"kind"}),
    "finish": ({"summary"}, set()),
}


def test_the_tools_are_exactly_the_contract_with_json_schemas():
    assert list(WORK_TOOLS) == list(CONTRACT)
    for name, (required, optional) in CONTRACT.items():
        definition = SPECS[name].definition()
        schema = definition["input_schema"]
        assert definition["name"] == name and definition["description"]
        assert schema["type"] == "object"
        assert set(schema["required"]) == required
        assert required | optional <= set(schema["properties"])
        for prop in schema["properties"].values():
            assert prop["type"] in ("string", "integer", "number", "array") and prop["description"]


def test_arguments_are_checked_and_whole_floats_taken_as_integers():
    spec = SPECS["read_file"]
    checked = check_input(spec, {"path": "a.py", "start_line": 2.0})
    assert checked == {"path": "a.py", "start_line": 2}
    assert check_input(spec, {"path": "a.py", "end_line": None}) == {"path": "a.py"}
    for bad, message in [
        ({"path": "a.py", "start_line": True}, "start_line of read_file must be a whole number"),
        ({"path": "a.py", "start_line": 0}, "of at least 1"),
        ({"path": "a.py", "start_line": 1.5}, "must be a whole number"),
        ("a.py", "must be a JSON object"),
    ]:
        with pytest.raises(ToolInputError, match=message):
            check_input(spec, bad)
    with pytest.raises(ToolInputError, match="one of episodic, semantic"):
        check_input(SPECS["remember"], {"content": "x", "kind": "gossip"})
    with pytest.raises(ToolInputError, match="a list of strings"):
        check_input(PROPOSE_PLAN, {**_plan(), "files": "hello.txt"})


def _plan() -> dict:
    return {"summary": "s", "files": [], "commands": [], "risk": "low", "estimated_steps": 1}


def _toolbox(tmp_path: Path, sandbox: str) -> ToolBox:
    no_database = None  # these calls never reach it
    files, commands = WorktreeFiles(tmp_path), make_sandbox(sandbox)
    return ToolBox(files, commands, tmp_path, no_database, 1, 1, "demo")  # type: ignore[arg-type]


def test_each_call_is_classified_by_what_it_can_change(tmp_path):
    boxed = _toolbox(tmp_path, "bubblewrap")
    assert [boxed.risk(n) for n in WORK_TOOLS] == [
        Risk.READ_ONLY, Risk.WRITES, Risk.WRITES, Risk.READ_ONLY, Risk.READ_ONLY,
        Risk.COMMANDS, Risk.READ_ONLY, Risk.WRITES, Risk.READ_ONLY,
    ]  # fmt: skip
    assert boxed.risk("no_such_tool") is Risk.READ_ONLY
    # Without a sandbox a command can reach the network.
    assert _toolbox(tmp_path, "none").risk("run_command") is Risk.NETWORK
    assert Risk.NETWORK.high and Risk.COMMANDS.high and not Risk.WRITES.high


async def test_a_tool_outside_the_runs_set_is_an_error_naming_the_allowed_ones(tmp_path):
    box = _toolbox(tmp_path, "bubblewrap")
    box.names = ("read_file", "finish")

    result = await box.dispatch({"type": "tool_use", "id": "t1", "name": "write_file",
                                 "input": {"path": "a", "content": "b"}})  # fmt: skip

    assert not result.ok
    assert result.content == (
        "There is no tool named 'write_file' here; the tools are read_file, finish."
    )
    assert not (tmp_path / "a").exists()


def test_the_calls_still_to_answer_are_those_of_the_last_turn_without_a_result():
    calls = [{"type": "tool_use", "id": i, "name": "read_file", "input": {}} for i in "abc"]
    turn = {"role": "assistant", "content": [{"type": "text", "text": "go"}, *calls]}
    part = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": ""}]}
    start = {"role": "user", "content": "task"}
    assert [c["id"] for c in unanswered([start, turn])] == ["a", "b", "c"]
    assert [c["id"] for c in unanswered([start, turn, part])] == ["b", "c"]
    assert unanswered([start]) == []
