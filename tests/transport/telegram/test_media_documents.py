import json

import pytest

from lugh.transport.telegram.documents import on_document
from tests.knowledge.conftest import write_pdf
from tests.transport.telegram.media_fixtures import (  # noqa: F401 (fixtures)
    OWNER, anthropic_api, arrived, bot, chat, make_chat, media_env, openai_api, project,
    telegram_api,
)

NOTES = """# Deploying

We deploy with a blue-green switch behind the load balancer.

## Rollback

Flip the switch back; the old colour stays warm for an hour.
"""


async def progress_messages(chat):
    rows = await chat.services.pool.fetch(
        "SELECT id, method, payload FROM outbox WHERE chat_id = $1 ORDER BY id", OWNER
    )
    return [(r["id"], r["method"], json.loads(r["payload"])) for r in rows]


async def test_a_markdown_file_lands_in_the_project_knowledge_with_one_message_edited_to_a_summary(
    chat, project, bot, telegram_api, openai_api
):
    telegram_api.push_document(OWNER, NOTES.encode(), "deploy.md", "text/markdown")

    assert await on_document(chat, await arrived(bot)) is None

    [(first, method, sent), *edits] = await progress_messages(chat)
    assert method == "sendMessage" and sent["text"] == "📄 Downloading <b>deploy.md</b>…"
    assert edits and all(m == "editMessageText" and p["edit_of"] == first for _, m, p in edits)
    assert edits[-1][2]["text"] == (
        "📄 Added <b>deploy.md</b> to demo's knowledge: 2 chunks from 2 sections. "
        "Ask about it with /ask.")
    hits = await chat.services.knowledge.search("demo", "how do we roll back a deploy")
    assert any("Flip the switch back" in hit.text for hit in hits)


async def test_a_pdf_summary_counts_its_pages(chat, project, bot, telegram_api, openai_api):
    pdf = write_pdf(["The first page is about billing.", "The second page is about refunds."])
    telegram_api.push_document(OWNER, pdf, "handbook.pdf", "application/pdf")

    await on_document(chat, await arrived(bot))

    *_, (_, _, last) = await progress_messages(chat)
    assert "handbook.pdf</b> to demo's knowledge:" in last["text"]
    assert "from 2 pages" in last["text"]


async def test_the_same_file_sent_again_is_left_as_it_was(chat, project, bot, telegram_api):
    for _ in range(2):
        telegram_api.push_document(OWNER, NOTES.encode(), "deploy.md")
        await on_document(chat, await arrived(bot))

    *_, (_, _, last) = await progress_messages(chat)
    assert last["text"] == "📄 <b>deploy.md</b> is already in demo's knowledge, unchanged."


@pytest.mark.parametrize("filename, expected", [
    ("photos.zip", "I can't read photos.zip: I add PDF, Markdown, plain text and source code"),
    (".env", ".env may hold keys or passwords"),
])  # fmt: skip
async def test_an_unsupported_or_secret_file_gets_one_sentence_and_is_never_downloaded(
    chat, project, bot, telegram_api, filename, expected
):
    telegram_api.push_document(OWNER, b"PK\x03\x04 whatever", filename)

    reply = await on_document(chat, await arrived(bot))

    assert not reply.ok and reply.text.startswith(expected)
    assert telegram_api.requests_to("/getFile") == []
    assert await progress_messages(chat) == []
    assert await chat.services.pool.fetchval("SELECT count(*) FROM documents") == 0


async def test_a_file_over_the_limit_is_refused_before_the_download(
    make_chat, project, bot, telegram_api
):
    small = await make_chat(LUGH_UPLOAD_MAX_BYTES="100")
    telegram_api.push_document(OWNER, NOTES.encode() * 3, "deploy.md")

    reply = await on_document(small, await arrived(bot))

    assert not reply.ok and "over the 100 bytes I read from one file" in reply.text
    assert telegram_api.requests_to("/getFile") == []


async def test_a_corrupt_pdf_is_reported_in_the_progress_message_and_nothing_is_written(
    chat, project, bot, telegram_api
):
    telegram_api.push_document(OWNER, b"%PDF-1.7 this is not really a pdf", "broken.pdf")

    assert await on_document(chat, await arrived(bot)) is None

    *_, (_, _, last) = await progress_messages(chat)
    assert last["text"].startswith("📄 Nothing was added: broken.pdf")
    assert await chat.services.pool.fetchval("SELECT count(*) FROM documents") == 0
    assert await chat.services.pool.fetchval("SELECT count(*) FROM sources") == 0


async def test_without_a_project_a_document_gets_one_sentence(chat, bot, telegram_api):
    telegram_api.push_document(OWNER, NOTES.encode(), "deploy.md")

    reply = await on_document(chat, await arrived(bot))

    assert not reply.ok and reply.text.startswith("There is no project yet")
    assert telegram_api.requests_to("/getFile") == []


async def test_a_pdf_sent_without_a_suffix_is_read_as_the_pdf_its_type_says(
    chat, project, bot, telegram_api
):
    telegram_api.push_document(OWNER, write_pdf(["Quarterly numbers."]), "scan",
                               "application/pdf")

    await on_document(chat, await arrived(bot))

    *_, (_, _, last) = await progress_messages(chat)
    assert last["text"].startswith(
        "📄 Added <b>scan.pdf</b> to demo's knowledge: 1 chunk from 1 page")
