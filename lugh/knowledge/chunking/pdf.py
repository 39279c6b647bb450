"""PDF with pypdf: text page by page (page numbers kept), within limits that stop damaged,
encrypted, truncated and decompression-bomb files with a clear reason."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError

from lugh.knowledge.chunking.base import Chunk, ChunkSizes, ParsedDocument, TokenCounter, Unreadable
from lugh.knowledge.chunking.text import pack, spans

MAX_PAGES = 2_000
MAX_PAGE_CHARS = 200_000
MAX_TEXT_CHARS = 4_000_000
# Most a single stream may inflate to; a dense real page needs well under 1 MB.
MAX_STREAM_BYTES = 16_000_000
_END_MARKER_WINDOW = 2048


def chunk_pdf(data: bytes, count: TokenCounter, sizes: ChunkSizes) -> ParsedDocument:
    """Chunks of a PDF's text, each located by its page number (from 1)."""
    if b"%PDF-" not in data[:1024]:
        raise Unreadable("is not a PDF (it lacks the %PDF- header), though its name says it is")
    if b"%%EOF" not in data[-_END_MARKER_WINDOW:]:
        raise Unreadable(
            "is a truncated or damaged PDF (its end-of-file marker is missing); "
            "get a complete copy and ingest it again"
        )
    try:
        with _limits():
            title, pages = _read(data)
    except Unreadable:
        raise
    except LimitReachedError:
        raise Unreadable(
            "inflates to far more data than its size suggests (a possible decompression bomb), "
            "so it was not read"
        ) from None
    except (DependencyError, NotImplementedError):
        raise Unreadable(
            "is encrypted in a way Lugh cannot open; save an unencrypted copy and ingest that"
        ) from None
    except FileNotDecryptedError:
        raise _password_protected() from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
        raise Unreadable(f"is a damaged PDF that cannot be read ({_short(e)})") from None
    chunks = []
    for number, text in enumerate(pages, 1):
        for s, e in pack(spans(text, 0, len(text), count, sizes), sizes):
            chunks.append(Chunk(text[s:e], {"page": number}))
    if not chunks:
        raise Unreadable(
            "has no text layer (it is probably scanned pages), and Lugh cannot read text in images"
        )
    return ParsedDocument("pdf", title, chunks, {"pages": len(pages)})


def _read(data: bytes) -> tuple[str | None, list[str]]:
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise _password_protected()
    count = len(reader.pages)
    if count > MAX_PAGES:
        raise Unreadable(
            f"has {count:,} pages, more than the {MAX_PAGES:,} Lugh reads from one PDF; "
            "split it and ingest the parts"
        )
    pages: list[str] = []
    total = 0
    for number, page in enumerate(reader.pages, 1):
        text = _clean(page.extract_text() or "")
        if len(text) > MAX_PAGE_CHARS:
            raise Unreadable(
                f"has over {MAX_PAGE_CHARS:,} characters of text on page {number}, far more than "
                "a real page holds (a possible decompression bomb), so it was not read"
            )
        total += len(text)
        if total > MAX_TEXT_CHARS:
            raise Unreadable(
                f"holds more than {MAX_TEXT_CHARS:,} characters of text, more than Lugh reads "
                "from one PDF; split it and ingest the parts"
            )
        pages.append(text)
    return _title(reader), pages


@contextlib.contextmanager
def _limits() -> Iterator[None]:
    # Older pypdf has no per-call configuration; its built-in 75 MB stream limit still applies.
    apply = getattr(pypdf, "apply_configuration", None)
    if apply is None:
        yield
        return
    with apply(
        zlib_maximum_output_length=MAX_STREAM_BYTES,
        lzw_maximum_output_length=MAX_STREAM_BYTES,
        run_length_maximum_output_length=MAX_STREAM_BYTES,
        array_based_stream_maximum_output_length=MAX_STREAM_BYTES,
    ):
        yield


def _title(reader: pypdf.PdfReader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except PyPdfError:
        return None
    title = _clean(str(title)).strip() if title else ""
    return title[:200] or None


def _clean(text: str) -> str:
    # Postgres text holds neither NUL nor lone surrogates, which PDF fonts can produce.
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _password_protected() -> Unreadable:
    return Unreadable("is protected by a password; remove the password and ingest it again")


def _short(error: Exception) -> str:
    reason = str(error).strip().rstrip(".") or type(error).__name__
    return reason if len(reason) <= 120 else reason[:119] + "…"
