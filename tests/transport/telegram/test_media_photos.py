import base64
import io

from PIL import Image, ImageDraw

from lugh.llm.vision import TOOL
from lugh.transport.telegram.photos import on_photo
from tests.fakes.anthropic import tool_use, turn
from tests.transport.telegram.media_fixtures import (  # noqa: F401 (fixtures)
    OWNER, anthropic_api, arrived, bot, chat, make_chat, media_env, openai_api, press, project,
    telegram_api,
)

TWO_TASKS = {"tasks": [
    {"title": "Add a login page", "details": "Email and password, as sketched top left."},
    {"title": "Show the error count", "details": "A red badge on the dashboard."},
]}  # fmt: skip


def whiteboard(size=(3000, 2000), mode="RGB", fmt="JPEG") -> bytes:
    image = Image.new(mode, size, "white" if mode == "RGB" else (255, 255, 255, 0))
    ImageDraw.Draw(image).rectangle((100, 100, 900, 700), outline="black", width=12)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def sent_image(anthropic_api):
    [body] = anthropic_api.bodies
    [image, caption] = body["messages"][0]["content"]
    assert image["type"] == "image" and image["source"]["type"] == "base64"
    data = base64.b64decode(image["source"]["data"])
    return body, image["source"]["media_type"], Image.open(io.BytesIO(data)), caption


async def test_a_photo_reaches_the_model_as_an_image_block_resized_with_its_caption(
    chat, project, bot, telegram_api, anthropic_api
):
    anthropic_api.script(turn(tool_use(TOOL, TWO_TASKS)))
    telegram_api.push_photo(OWNER, whiteboard(), caption="what we agreed today")

    reply = await on_photo(chat, await arrived(bot))

    body, media_type, image, caption = sent_image(anthropic_api)
    assert (media_type, image.format, image.size) == ("image/jpeg", "JPEG", (1568, 1045))
    assert caption["type"] == "text" and "what we agreed today" in caption["text"]
    assert body["model"] == "claude-vision-test"
    assert body["tool_choice"] == {"type": "tool", "name": TOOL}
    assert body["tools"][0]["name"] == TOOL
    assert reply.text.startswith("📷 I see 2 tasks in that photo:\n1. Add a login page — Email")
    assert [[b.label for b in row] for row in reply.buttons] == [
        ["➕ 1. Add a login page"], ["➕ 2. Show the error count"], ["All", "Ignore"]]
    row = await chat.services.pool.fetchrow("SELECT * FROM vision_tasks")
    assert row["status"] == "proposed" and row["caption"] == "what we agreed today"


async def test_proposals_become_tasks_by_their_buttons_each_exactly_once(
    chat, project, bot, telegram_api, anthropic_api
):
    anthropic_api.script(turn(tool_use(TOOL, TWO_TASKS)))
    telegram_api.push_photo(OWNER, whiteboard())
    reply = await on_photo(chat, await arrived(bot))
    [first], _, [everything, _] = reply.buttons

    one = await press(chat, first.action, first.argument)
    again = await press(chat, first.action, first.argument)
    rest = await press(chat, everything.action, everything.argument)
    all_again = await press(chat, everything.action, everything.argument)

    login, errors = sorted(await chat.services.tasks.list(), key=lambda t: t.id)
    assert (login.title, login.source) == ("Add a login page", "photo")
    assert "as sketched top left" in login.body
    assert errors.title == "Show the error count"
    assert one.text.startswith(f"Queued #{login.id} in demo")
    assert one.text.endswith("Still proposed: 2. Show the error count")
    assert [[b.label for b in row] for row in one.buttons] == [
        ["➕ 2. Show the error count"], ["Ignore"]]
    assert not again.ok and f"#{login.id}" in again.text
    assert rest.text.startswith(f"Queued #{errors.id}") and f"#{login.id}" not in rest.text
    assert not all_again.ok
    assert len(await chat.services.tasks.list()) == 2


async def test_ignored_proposals_cannot_be_accepted_later(
    chat, project, bot, telegram_api, anthropic_api
):
    anthropic_api.script(turn(tool_use(TOOL, TWO_TASKS)))
    telegram_api.push_photo(OWNER, whiteboard())
    reply = await on_photo(chat, await arrived(bot))
    ignore = reply.buttons[-1][-1]

    ignored = await press(chat, ignore.action, ignore.argument)
    late = await press(chat, "vision_accept", f"{ignore.argument}:0")

    assert ignored.text == "Fine, nothing was created from that photo."
    assert not late.ok
    assert await chat.services.tasks.list() == []


async def test_a_transparent_image_goes_as_png(chat, project, bot, telegram_api, anthropic_api):
    anthropic_api.script(turn(tool_use(TOOL, {"tasks": []})))
    telegram_api.push_photo(OWNER, whiteboard((800, 600), "RGBA", "PNG"))

    reply = await on_photo(chat, await arrived(bot))

    _, media_type, image, _ = sent_image(anthropic_api)
    assert (media_type, image.size) == ("image/png", (800, 600))
    assert reply.text.startswith("📷 I see no work to do")


async def test_a_corrupt_photo_gets_one_sentence_and_never_reaches_the_model(
    chat, bot, telegram_api, anthropic_api
):
    telegram_api.push_photo(OWNER, b"\xff\xd8\xff not really a jpeg")

    reply = await on_photo(chat, await arrived(bot))

    assert not reply.ok and reply.text == "I couldn't read that image; it seems corrupt."
    assert anthropic_api.bodies == []
    status = await chat.services.pool.fetchval("SELECT status FROM vision_tasks")
    assert status == "failed"


async def test_an_oversized_photo_is_refused_before_the_download(
    make_chat, bot, telegram_api, anthropic_api
):
    chat = await make_chat(LUGH_UPLOAD_MAX_BYTES="1000")
    telegram_api.push_photo(OWNER, whiteboard())

    reply = await on_photo(chat, await arrived(bot))

    assert not reply.ok and "over the 1000 bytes I take" in reply.text
    assert telegram_api.requests_to("/getFile") == []
    assert anthropic_api.bodies == []


async def test_a_model_that_is_down_gets_one_sentence(chat, bot, telegram_api, anthropic_api):
    anthropic_api.script(turn(tool_use(TOOL, TWO_TASKS)))
    anthropic_api.fail(0, 529, times=20, retry_after_s=0)
    telegram_api.push_photo(OWNER, whiteboard((400, 300)))

    reply = await on_photo(chat, await arrived(bot))

    assert not reply.ok and reply.text.startswith("The Anthropic API is overloaded (529).")


async def test_the_same_photo_message_handled_twice_reaches_the_model_once(
    chat, bot, telegram_api, anthropic_api
):
    anthropic_api.script(turn(tool_use(TOOL, TWO_TASKS)))
    telegram_api.push_photo(OWNER, whiteboard((400, 300)))
    message = await arrived(bot)

    first = await on_photo(chat, message)
    second = await on_photo(chat, message)

    assert first is not None and second is None
    assert len(anthropic_api.bodies) == 1


async def test_without_an_anthropic_key_a_photo_is_not_even_downloaded(
    make_chat, bot, telegram_api
):
    chat = await make_chat(ANTHROPIC_API_KEY="")
    telegram_api.push_photo(OWNER, whiteboard((400, 300)))

    reply = await on_photo(chat, await arrived(bot))

    assert not reply.ok and "ANTHROPIC_API_KEY" in reply.text
    assert telegram_api.requests_to("/getFile") == []
