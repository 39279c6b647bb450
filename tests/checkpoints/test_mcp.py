from mcp import Client

from lugh.mcp.server import build_server
from tests.mcp.conftest import payload


async def test_mcp_tools_create_list_and_restore_a_checkpoint_only_when_confirmed(two_projects):
    services = two_projects
    project = await services.projects.get("alpha")
    async with Client(build_server(services)) as client:
        made = payload(await client.call_tool(
            "create_checkpoint", {"project": "alpha", "label": "from a client"}))
        later = await services.tasks.enqueue(project.id, "after the checkpoint")
        listed = payload(await client.call_tool("list_checkpoints", {"project": "alpha"}))
        preview = payload(
            await client.call_tool("restore_checkpoint", {"checkpoint_id": made["id"]})
        )
        assert await services.tasks.get(later.id) is not None
        restored = payload(await client.call_tool(
            "restore_checkpoint", {"checkpoint_id": made["id"], "confirm": True}))

    assert (made["project"], made["kind"], made["label"]) == ("alpha", "manual", "from a client")
    assert [c["id"] for c in listed["checkpoints"]] == [made["id"]]
    assert preview["restored"] is False
    assert f"tasks removed: #{later.id} after the checkpoint" in preview["plan"]
    assert restored["restored"] is True and restored["pre_checkpoint_id"] is not None
    assert await services.tasks.get(later.id) is None
