"""A long diff as a PNG the phone shows inline, highlighted by Pygments' ImageFormatter.

The font is a file found on disk (DejaVu Sans Mono, from fonts-dejavu-core), never looked up
with `fc-list`, which a slim container does not have. Without a font, or when Pillow cannot
draw, there is no image: the review message still has the text preview, and the full diff is
a button away.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from lugh.logs import get_logger

log = get_logger("lugh.commands.diff_image")

FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",  # Debian, Ubuntu
    "/usr/share/fonts/dejavu-sans-mono-fonts/DejaVuSansMono.ttf",  # Fedora
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",  # Arch
    "/Library/Fonts/DejaVuSansMono.ttf",
)
# What fits a phone screen readably and stays a small upload: past these, the image says how
# much it left out and the `.diff` document has the rest.
MAX_LINES = 150
MAX_COLUMNS = 110
FONT_SIZE = 14
MAX_RATIO = 10  # height to width; Telegram's limit is 20


def find_font(candidates: tuple[str, ...] = FONT_FILES) -> Path | None:
    """The first monospace TrueType font that exists, or None."""
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def clipped(text: str, max_lines: int = MAX_LINES, max_columns: int = MAX_COLUMNS) -> str:
    """At most `max_lines` lines of at most `max_columns` characters, saying what was cut."""
    lines = text.splitlines()
    shown = [line if len(line) <= max_columns else line[: max_columns - 1] + "…"
             for line in lines[:max_lines]]  # fmt: skip
    if len(lines) > max_lines:
        shown.append(f"… {len(lines) - max_lines} more lines in the full diff")
    return "\n".join(shown) + "\n"


def render_png(text: str, *, font: Path | None = None, language: str = "diff") -> bytes | None:
    """`text` highlighted as a PNG, clipped to a phone-sized image; None when it cannot be drawn."""
    font = font or find_font()
    if font is None:
        log.info("no monospace font found, so diffs are not rendered as images",
                 looked_in=list(FONT_FILES))  # fmt: skip
        return None
    try:
        from pygments import highlight
        from pygments.formatters import ImageFormatter
        from pygments.lexers import get_lexer_by_name

        formatter = ImageFormatter(
            font_name=str(font), font_size=FONT_SIZE, image_format="png", line_numbers=False,
            style="default", image_pad=12, line_pad=3,
        )  # fmt: skip
        out = highlight(clipped(text), get_lexer_by_name(language), formatter)
        return _within_photo_ratio(out)
    except Exception as exc:  # Pillow missing or a broken font: the text preview is enough
        log.warning("a diff could not be rendered as an image", error=repr(exc))
        return None


def _within_photo_ratio(png: bytes) -> bytes:
    """Telegram refuses photos taller than 20 times their width: a diff of short lines is
    widened with background."""
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    width, height = image.size
    if height <= MAX_RATIO * width:
        return png
    canvas = Image.new(image.mode, (-(-height // MAX_RATIO), height), image.getpixel((0, 0)))
    canvas.paste(image, (0, 0))
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


async def diff_png(text: str, *, font: Path | None = None) -> bytes | None:
    """`render_png` off the event loop: drawing a long diff takes a noticeable fraction of a
    second, and the bot must keep answering meanwhile."""
    return await asyncio.to_thread(render_png, text, font=font)
