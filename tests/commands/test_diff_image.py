"""Long diffs become a highlighted PNG the phone shows inline; short ones stay text; without a
font there is simply no image."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from rich.console import Console

from lugh.agents.diff import Diff, FileChange
from lugh.commands import diff_image
from lugh.commands.diff_image import MAX_LINES, clipped, find_font, render_png
from lugh.commands.review import PREVIEW_LINES, diff_reply
from lugh.transport.console.render import render

def a_diff(lines: int, width: int = 30) -> Diff:
    body = [f"+line {n} {'x' * width}" for n in range(lines)]
    text = "\n".join(["diff --git a/app.py b/app.py", "--- a/app.py", "+++ b/app.py",
                      f"@@ -0,0 +1,{lines} @@", *body]) + "\n"  # fmt: skip
    return Diff("a" * 40, "b" * 40, (FileChange("app.py", "added", lines, 0),), text)


async def test_a_long_diff_comes_with_a_png_that_decodes():
    reply = await diff_reply(7, a_diff(300))

    [image] = reply.attachments
    assert (image.filename, image.mime) == ("task-7-diff.png", "image/png")
    picture = Image.open(io.BytesIO(image.content))
    picture.verify()
    assert picture.format == "PNG"
    width, height = Image.open(io.BytesIO(image.content)).size
    assert height <= 10 * width  # within Telegram's photo proportions
    assert reply.code[0].text.count("\n") == PREVIEW_LINES - 1  # the text preview stays


async def test_a_short_diff_has_no_image_and_no_file():
    reply = await diff_reply(7, a_diff(10))

    assert reply.attachments == []
    assert "+10 −0 in 1 file" in reply.text


async def test_the_full_diff_is_a_document_only_when_asked_for():
    reply = await diff_reply(7, a_diff(300), full=True)

    [document] = reply.attachments
    assert (document.filename, document.mime) == ("task-7.diff", "text/x-diff")
    assert document.content.decode().count("\n+line") == 300


def test_the_image_is_capped_and_says_what_it_left_out():
    text = clipped("\n".join(f"+{'y' * 500}" for _ in range(MAX_LINES + 40)))

    lines = text.splitlines()
    assert len(lines) == MAX_LINES + 1
    assert lines[-1] == "… 40 more lines in the full diff"
    assert max(len(line) for line in lines) <= diff_image.MAX_COLUMNS
    small = Image.open(io.BytesIO(render_png(text)))
    assert small.size[1] < 4000


def test_without_a_font_there_is_no_image_and_no_error(tmp_path: Path):
    assert find_font((str(tmp_path / "missing.ttf"),)) is None
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")

    assert render_png("+x\n" * 100, font=broken) is None


async def test_the_console_saves_the_image_and_says_where(tmp_path: Path):
    reply = await diff_reply(7, a_diff(300))
    out = io.StringIO()

    render(reply, Console(file=out, width=200), tmp_path)

    saved = tmp_path / "task-7-diff.png"
    assert f"(saved an image of it to {saved})" in out.getvalue()
    assert Image.open(io.BytesIO(saved.read_bytes())).format == "PNG"
