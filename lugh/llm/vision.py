"""Photos to proposed tasks: an image fitted to Claude's vision limits, sent as a real `image`
block, answered through the `propose_tasks` tool (DESIGN §9, a contract)."""

from __future__ import annotations

import asyncio
import base64
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from lugh.errors import UserError
from lugh.llm.chat import ChatModel, ChatRequest, LLMError

TOOL = "propose_tasks"
MAX_EDGE_PX = 1568  # beyond this Claude scales the image down itself, paying the tokens first
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a bigger "photo" is a decompression bomb, not a whiteboard
MAX_PROPOSALS = 8
MAX_TOKENS = 2048
TIMEOUT_S = 90.0
SYSTEM = """You turn a photo the owner of a software project took (a whiteboard, a sketch, a
screenshot of a bug, a page of notes) into engineering tasks for an AI coding agent. Call the
propose_tasks tool once. Each task gets a short imperative title (under 80 characters) and
details: what the photo shows that the agent needs to do the work. Use the caption for intent.
Propose at most {limit} tasks; propose none when the photo asks for no work."""


class UnreadableImage(UserError):
    """The bytes are not an image Lugh can read; `str()` is one sentence."""


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    media_type: str  # image/jpeg | image/png
    width: int
    height: int


@dataclass(frozen=True)
class Proposal:
    title: str
    details: str

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "details": self.details}


def prepare_image(data: bytes) -> PreparedImage:
    """`data` re-encoded within the vision limits (long edge ≤ 1568 px, ≤ 5 MB): PNG when it has
    transparency, JPEG otherwise. CPU-bound: call it off the event loop."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise UnreadableImage("That image is too large for me to read.")
                scale = MAX_EDGE_PX / max(opened.width, opened.height)
                if scale < 1 and opened.format == "JPEG":
                    # Decode at 1/2, 1/4 or 1/8 straight from the DCT: a 12 MP photo in a
                    # fraction of the time, still at least as large as the final size.
                    opened.draft("RGB", (math.ceil(opened.width * scale),
                                         math.ceil(opened.height * scale)))  # fmt: skip
                image = ImageOps.exif_transpose(opened)
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnreadableImage("I couldn't read that image; it seems corrupt.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage("That image is too large for me to read.") from None
    image.thumbnail((MAX_EDGE_PX, MAX_EDGE_PX), Image.Resampling.LANCZOS)
    transparent = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    edge = MAX_EDGE_PX
    quality = 85
    while True:
        out = io.BytesIO()
        if transparent:
            image.convert("RGBA").save(out, "PNG")  # optimize: seconds for a few percent
        else:
            image.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= MAX_IMAGE_BYTES:
            break
        # Too big still (a noisy PNG): smaller and, for JPEG, coarser until it fits.
        edge = int(edge * 0.8)
        quality = max(60, quality - 10)
        image.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    kind = "image/png" if transparent else "image/jpeg"
    return PreparedImage(out.getvalue(), kind, image.width, image.height)


async def propose_tasks(
    model: ChatModel, model_name: str, image: PreparedImage, caption: str | None
) -> list[Proposal]:
    """The tasks Claude sees in `image`; raises LLMError when it cannot be asked."""
    said = caption.strip() if caption and caption.strip() else "(no caption)"
    request = ChatRequest(
        model=model_name,
        system=SYSTEM.format(limit=MAX_PROPOSALS),
        tools=[TOOL_SPEC],
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {
                "type": "base64", "media_type": image.media_type,
                "data": base64.b64encode(image.data).decode("ascii"),
            }},
            {"type": "text", "text": f"Caption: {said}"},
        ]}],
        max_tokens=MAX_TOKENS,
        tool_choice={"type": "tool", "name": TOOL},
    )  # fmt: skip
    try:
        async with asyncio.timeout(TIMEOUT_S):
            reply = await model.complete(request)
    except TimeoutError:
        raise LLMError("The model did not answer in time.", retryable=True) from None
    for use in reply.tool_uses:
        if use.get("name") == TOOL:
            return _proposals(use.get("input"))
    return []


TOOL_SPEC: dict[str, Any] = {
    "name": TOOL,
    "description": "Propose the engineering tasks the photo asks for.",
    "input_schema": {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "description": "short imperative title"},
                        "details": {"type": "string", "description": "what the agent needs"},
                    },
                    "required": ["title", "details"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["tasks"],
        "additionalProperties": False,
    },
}


def _proposals(data: Any) -> list[Proposal]:
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list):
        return []
    found = []
    for task in tasks:
        if not isinstance(task, dict) or not isinstance(task.get("title"), str):
            continue
        title = " ".join(task["title"].split())
        details = task.get("details") if isinstance(task.get("details"), str) else ""
        if title:
            found.append(Proposal(title, details.strip()))
    return found[:MAX_PROPOSALS]
