import io
import os

import pytest
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject

from lugh.knowledge.chunking import ChunkSizes, Unreadable, parse_document
from tests.knowledge.conftest import add_page, write_pdf

GOOD_PDF_PAGES = ["The lighthouse keeper's log for the winter of 1902.", "Storms and ships."]


def pdf_with_page(content: bytes) -> bytes:
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    add_page(writer, font, content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def corrupt_pdf() -> bytes:
    return b"%PDF-1.7\n" + os.urandom(4000).replace(b"%%EOF", b"") + b"\n%%EOF\n"


def encrypted_pdf() -> bytes:
    return write_pdf(GOOD_PDF_PAGES, password="hunter2")


def truncated_pdf() -> bytes:
    whole = write_pdf(GOOD_PDF_PAGES)
    return whole[: len(whole) * 2 // 3]


def bomb_pdf() -> bytes:
    # 64 MB of content stream squeezed into ~60 KB.
    return pdf_with_page(b"BT /F1 10 Tf 72 740 Td (boom) Tj ET " + b" " * 64_000_000)


def wall_of_text_pdf() -> bytes:
    return pdf_with_page(b"BT /F1 10 Tf 72 740 Td (" + b"A" * 300_000 + b") Tj ET")


BAD_INPUTS = {
    "corrupt PDF": ("report.pdf", corrupt_pdf, "is a damaged PDF that cannot be read"),
    "encrypted PDF": ("secret.pdf", encrypted_pdf, "is protected by a password"),
    "truncated PDF": ("cut.pdf", truncated_pdf, "is a truncated or damaged PDF"),
    "decompression-bomb PDF": ("bomb.pdf", bomb_pdf, "a possible decompression bomb"),
    "PDF with a wall of text": ("wall.pdf", wall_of_text_pdf, "far more than a real page holds"),
    "10 MB single-line file": ("data.txt", lambda: b"x" * 10_000_000, "is 9.5 MB, over the 4 MB"),
    "minified single line": (
        "app.min.js", lambda: b"var a=1;" * 40_000, "looks minified or generated"
    ),
    "binary data named .md": ("notes.md", lambda: bytes(range(256)) * 64, "holds binary data"),
    "empty file": ("empty.md", lambda: b"", "is empty"),
    "blank file": ("blank.txt", lambda: b"\n \n\t\n", "is empty"),
    "unsupported type": ("photo.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "is a .png file"),
    "PDF that is not one": ("fake.pdf", lambda: b"hello, I am text", "is not a PDF"),
    "key file": (
        "id_ed25519", lambda: b"-----BEGIN OPENSSH PRIVATE KEY-----\n", "keys or passwords"
    ),
}


async def rows(pool) -> int:
    return await pool.fetchval(
        "SELECT (SELECT count(*) FROM sources) + (SELECT count(*) FROM documents)"
        " + (SELECT count(*) FROM chunks)"
    )


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_refused_with_one_clear_sentence(local_embedder, case):
    filename, make, expected = BAD_INPUTS[case]

    with pytest.raises(Unreadable) as refused:
        parse_document(filename, make(), local_embedder.count_tokens, ChunkSizes())

    sentence = f"{filename} {refused.value}."
    assert expected in sentence
    assert sentence.count(". ") == 0 and "\n" not in sentence, "one sentence"


async def test_every_bad_input_in_a_batch_is_skipped_leaving_no_rows_while_the_rest_goes_on(
    knowledge, project, pool, embedder, docs
):
    folder = docs({name: make() for name, make, _ in BAD_INPUTS.values()} | {
        "zz-good.md": "# Tides\n\nThe tide turns twice a day.\n",
    })

    result = await knowledge.ingest_paths(project, [folder])

    assert result.documents == 1
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons.keys() == {name for name, _, _ in BAD_INPUTS.values()}
    for name, _, expected in BAD_INPUTS.values():
        assert reasons[name].startswith(f"{name} ") and expected in reasons[name]
    assert await pool.fetchval("SELECT array_agg(path) FROM documents") == ["zz-good.md"]
    assert await pool.fetchval("SELECT count(*) FROM chunks WHERE content LIKE '%boom%'") == 0
    assert embedder.calls == 1


async def test_a_bad_upload_leaves_no_rows_at_all(knowledge, project, pool, embedder):
    result = await knowledge.ingest_bytes(project, "scan.pdf", encrypted_pdf())

    assert result.documents == 0
    assert [s.reason for s in result.skipped] == [
        "scan.pdf is protected by a password; remove the password and ingest it again."
    ]
    assert await rows(pool) == 0
    assert embedder.calls == 0


async def test_a_batch_goes_on_past_bad_files(knowledge, project, pool, docs):
    folder = docs({
        "a-good.md": "# Tides\n\nThe tide turns twice a day.\n",
        "b-secret.pdf": encrypted_pdf(),
        "c-empty.txt": "",
        "d-good.txt": "Harbour dues are paid at the office by the pier.\n",
    })

    result = await knowledge.ingest_paths(project, [folder])

    assert result.documents == 2
    assert [s.path for s in result.skipped] == ["b-secret.pdf", "c-empty.txt"]
    assert sorted(await pool.fetchval("SELECT array_agg(path) FROM documents")) == [
        "a-good.md", "d-good.txt"
    ]


async def test_a_file_that_turns_bad_loses_its_old_version(knowledge, project, pool, docs):
    folder = docs({"notes.md": "# Notes\n\nFirst version.\n"})
    await knowledge.ingest_paths(project, [folder])
    (folder / "notes.md").write_bytes(bytes(range(256)))

    result = await knowledge.ingest_paths(project, [folder])

    assert "holds binary data" in result.skipped[0].reason
    assert await pool.fetchval("SELECT count(*) FROM documents") == 0
    assert await pool.fetchval("SELECT count(*) FROM chunks") == 0


async def test_a_path_that_does_not_exist_is_reported_and_the_rest_ingested(
    knowledge, project, docs, tmp_path
):
    folder = docs({"a.md": "# A\n\nAlpha.\n"})
    missing = tmp_path / "nowhere"

    result = await knowledge.ingest_paths(project, [missing, folder])

    assert result.documents == 1
    assert result.skipped[0].reason == f"There is no file or folder at {missing}."


async def test_a_symbolic_link_out_of_the_folder_is_not_followed(
    knowledge, project, docs, tmp_path
):
    outside = tmp_path / "private.txt"
    outside.write_text("the owner's private diary\n")
    folder = docs({"inside.md": "# Inside\n\nPublic notes.\n"})
    (folder / "diary.txt").symlink_to(outside)

    result = await knowledge.ingest_paths(project, [folder])

    assert result.documents == 1
    assert "symbolic link to a file outside the folder" in result.skipped[0].reason
