"""Knowledge fixtures: the real local embedder (loaded once per session), a counting wrapper,
a project to ingest into, and PDFs written with pypdf."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from lugh.knowledge.embedders.local import LocalEmbedder
from lugh.knowledge.service import KnowledgeService
from lugh.projects import ProjectService
from tests.conftest import make_repo


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


class CountingEmbedder:
    """A real Embedder that delegates to another and counts what it is asked to embed."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.calls = 0
        self.texts: list[str] = []

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts += texts
        return await self.inner.embed(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


@pytest.fixture
def embedder(local_embedder) -> CountingEmbedder:
    return CountingEmbedder(local_embedder)


@pytest.fixture
def knowledge(pool, embedder) -> KnowledgeService:
    return KnowledgeService(pool, embedder)


@pytest.fixture
async def project(pool, tmp_path) -> str:
    """A registered project named "demo" whose repository holds only a README."""
    repo = make_repo(tmp_path / "demo-repo", {"README.md": "# Demo\n\nA demo project.\n"})
    await ProjectService(pool, tmp_path / "data").register("demo", str(repo))
    return "demo"


def write_pdf(
    pages: list[str], *, title: str | None = None, password: str | None = None,
    owner_password: str | None = None,
) -> bytes:
    """A PDF whose pages hold these texts in Helvetica, one line per 90 characters; encrypted
    (AES-256) when given a password to open it or only one to change it."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for text in pages:
        lines = [line for para in text.split("\n") for line in textwrap.wrap(para, 90) or [""]]
        shown = " ".join(f"({_pdf_string(line)}) Tj T*" for line in lines)
        add_page(writer, font, f"BT /F1 10 Tf 12 TL 72 740 Td {shown} ET".encode("latin-1"))
    if title:
        writer.add_metadata({"/Title": title})
    if password or owner_password:
        writer.encrypt(
            user_password=password or "", owner_password=owner_password or password,
            algorithm="AES-256",
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def add_page(writer: PdfWriter, font, content: bytes, *, compress: bool = True) -> None:
    page = writer.add_blank_page(612, 792)
    stream = DecodedStreamObject()
    stream.set_data(content)
    contents = stream.flate_encode() if compress else stream
    page[NameObject("/Contents")] = writer._add_object(contents)
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
    )


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@pytest.fixture
def make_pdf() -> Callable[..., bytes]:
    return write_pdf


@pytest.fixture
def docs(tmp_path) -> Callable[[dict[str, str | bytes]], Path]:
    """Write files under a fresh folder (not a git repository) and return it."""

    def make(files: dict[str, str | bytes], name: str = "docs") -> Path:
        root = tmp_path / name
        for relative, content in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        return root

    return make
