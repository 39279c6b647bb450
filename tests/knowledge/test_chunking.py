import textwrap

import pytest

from lugh.knowledge.chunking import ChunkSizes, parse_document
from lugh.knowledge.chunking.code import chunk_code
from lugh.knowledge.chunking.markdown import chunk_markdown
from lugh.knowledge.chunking.text import chunk_text

SMALL = ChunkSizes(target=40, limit=60, overlap=8)

PROSE = (
    "Lighthouses guided ships along dangerous coasts for centuries. Their keepers lived in "
    "small cottages beside the tower. Every evening they climbed the stairs to light the lamp. "
    "Storms often cut them off from the mainland for weeks. Supplies came by boat when the sea "
    "allowed it. Some keepers kept detailed logs of the weather and passing vessels."
)


@pytest.fixture
def count(local_embedder):
    return local_embedder.count_tokens


def test_markdown_is_split_along_headings_and_each_chunk_keeps_its_heading_path(count):
    text = textwrap.dedent("""\
        # Guide

        Welcome to the guide.

        ## Install

        Run the installer.

        ### Linux

        Use the package manager.

        ```sh
        # not a heading, a shell comment
        apt install demo
        ```

        ## Usage

        Start it with `demo run`.
        """)

    title, chunks = chunk_markdown(text, count, ChunkSizes())

    assert title == "Guide"
    assert [c.location["heading"] for c in chunks] == [
        ["Guide"], ["Guide", "Install"], ["Guide", "Install", "Linux"], ["Guide", "Usage"]
    ]
    linux = chunks[2]
    assert "apt install demo" in linux.content and "# not a heading" in linux.content
    assert linux.location["lines"] == [9, 16]
    assert linux.context == "Guide › Install › Linux"
    assert linux.embedding_text.startswith("Guide › Install › Linux\n")


def test_a_markdown_section_longer_than_a_chunk_is_cut_but_keeps_its_heading_path(count):
    text = "# Coasts\n\n## Lighthouses\n\n" + "\n\n".join([PROSE] * 3)

    _, chunks = chunk_markdown(text, count, SMALL)

    assert len(chunks) > 3
    assert all(c.location["heading"] == ["Coasts", "Lighthouses"] for c in chunks)
    assert all(count(c.content) <= SMALL.limit for c in chunks)


def test_setext_headings_count_as_headings(count):
    text = "Title\n=====\n\nIntro.\n\nPart\n----\n\nBody.\n"

    _, chunks = chunk_markdown(text, count, ChunkSizes())

    assert [c.location["heading"] for c in chunks] == [["Title"], ["Title", "Part"]]


def test_plain_text_is_packed_by_paragraph_up_to_the_token_target(count):
    paragraphs = [f"Paragraph {i} is short and says one thing." for i in range(12)]

    chunks = chunk_text("\n\n".join(paragraphs), count, SMALL)

    assert 1 < len(chunks) < 12
    assert all(count(c.content) <= SMALL.target for c in chunks)
    # No paragraph is cut: each chunk starts and ends on a paragraph's edge.
    assert all(c.content.startswith("Paragraph") and c.content.endswith(".") for c in chunks)
    assert chunks[0].location == {"lines": [1, chunks[0].content.count("\n") + 1]}
    assert "".join(c.content for c in chunks).count("Paragraph") == 12


def test_a_long_paragraph_is_cut_between_sentences_with_a_small_overlap(count):
    sizes = ChunkSizes(target=40, limit=60, overlap=15)

    chunks = chunk_text(PROSE, count, sizes)

    assert len(chunks) >= 2
    assert all(count(c.content) <= sizes.limit for c in chunks)
    first_sentences = chunks[0].content.split(". ")
    assert chunks[1].content.startswith(first_sentences[-1].rstrip(".")), "overlap"
    for c in chunks:
        assert c.content[0].isupper() and c.content.endswith("."), "cut between sentences"


def test_a_sentence_longer_than_the_limit_is_cut_at_spaces(count):
    words = " ".join(f"word{i}" for i in range(400))

    chunks = chunk_text(words, count, SMALL)

    assert len(chunks) > 3
    assert all(count(c.content) <= SMALL.limit for c in chunks)
    assert " ".join(c.content for c in chunks).split() == words.split()


def test_chunks_carry_a_hash_of_what_is_embedded(count):
    a, b = chunk_text("Alpha.\n\nBeta.", count, ChunkSizes(target=3, limit=5, overlap=0))

    assert a.content_hash != b.content_hash and len(a.content_hash) == 64
    assert chunk_text("Alpha.", count, ChunkSizes())[0].content_hash == a.content_hash


PYTHON = textwrap.dedent('''\
    """A queue."""

    import heapq


    def push(queue, item):
        """Add an item."""
        heapq.heappush(queue, item)


    class Queue:
        """Tasks by priority."""

        def __init__(self):
            self.items = []

        @property
        def size(self):
            return len(self.items)

        def pop(self):
            return heapq.heappop(self.items)
    ''')


def test_python_is_split_along_functions_and_classes(count):
    chunks = chunk_code(PYTHON, "python", count, ChunkSizes(target=20, limit=40), path="q.py")

    by_symbol = {tuple(c.location.get("symbols", ())): c for c in chunks}
    assert ("push",) in by_symbol
    assert by_symbol[("push",)].content.startswith("def push(queue, item):")
    assert by_symbol[("push",)].location["lines"] == [6, 8]
    assert by_symbol[("push",)].context == "q.py: push"
    symbols = [s for c in chunks for s in c.location.get("symbols", ())]
    assert "Queue.size" in symbols and "Queue.pop" in symbols
    size = next(c for c in chunks if "Queue.size" in c.location.get("symbols", ()))
    assert "@property" in size.content, "decorators stay with their function"


def test_a_class_small_enough_stays_in_one_chunk(count):
    chunks = chunk_code(PYTHON, "python", count, ChunkSizes(target=200, limit=254), path="q.py")

    assert len(chunks) == 1
    assert chunks[0].location == {"lines": [1, 22], "symbols": ["push", "Queue"]}


def test_javascript_is_split_along_functions_classes_and_methods(count):
    source = textwrap.dedent("""\
        import { sleep } from "./time.js";

        export function retry(f, times) {
          for (let i = 0; i < times; i++) {
            try { return f(); } catch (e) { sleep(100 * i); }
          }
        }

        class Cache {
          constructor() { this.map = new Map(); }
          get(key) { return this.map.get(key); }
          set(key, value) { this.map.set(key, value); return this; }
        }

        const double = (x) => x * 2;
        """)

    chunks = chunk_code(source, "javascript", count, ChunkSizes(target=25, limit=45), path="a.js")

    symbols = [s for c in chunks for s in c.location.get("symbols", ())]
    assert "retry" in symbols and "double" in symbols
    assert {"Cache.get", "Cache.set"} <= set(symbols) or "Cache" in symbols
    retry = next(c for c in chunks if "retry" in c.location.get("symbols", ()))
    assert retry.content.startswith("export function retry"), "a split function starts a chunk"
    assert retry.location["lines"][0] == 3


def test_typescript_interfaces_classes_and_arrow_functions_are_named(count):
    source = textwrap.dedent("""\
        export interface Options {
          retries: number;
          backoffMs: number;
        }

        export class Queue<T> {
          private items: T[] = [];
          push(item: T): void { this.items.push(item); }
          pop(): T | undefined { return this.items.shift(); }
        }

        export const wait = async (ms: number): Promise<void> =>
          new Promise((resolve) => setTimeout(resolve, ms));
        """)

    chunks = chunk_code(source, "typescript", count, ChunkSizes(target=20, limit=40), path="q.ts")

    symbols = {s for c in chunks for s in c.location.get("symbols", ())}
    assert {"Options", "wait"} <= symbols
    assert "Queue" in symbols or {"Queue.push", "Queue.pop"} <= symbols


def test_tsx_parses_with_its_own_grammar(count):
    source = "export function Button({ label }: { label: string }) {\n  return <b>{label}</b>;\n}\n"

    chunks = chunk_code(source, "tsx", count, ChunkSizes(), path="Button.tsx")

    assert chunks == [chunks[0]]
    assert chunks[0].location == {"lines": [1, 3], "symbols": ["Button"]}


def test_other_languages_fall_back_to_blocks_of_lines(count):
    source = "\n\n".join(
        f"func handler{i}(w http.ResponseWriter) {{\n\tw.Write([]byte(\"{i}\"))\n}}"
        for i in range(10)
    )

    chunks = chunk_code(source, "go", count, SMALL, path="main.go")

    assert len(chunks) > 1
    assert all(c.location.keys() == {"lines"} for c in chunks)
    assert all(c.context == "main.go" for c in chunks)
    assert chunks[0].content.startswith("func handler0")
    assert all(count(c.content) <= SMALL.limit for c in chunks)


def test_pdf_chunks_keep_their_page_numbers(count, make_pdf):
    data = make_pdf(["Lighthouses of the northern coast.", "", PROSE * 2], title="Coasts")

    document = parse_document("coasts.pdf", data, count, SMALL)

    assert document.kind == "pdf" and document.title == "Coasts"
    assert document.meta == {"pages": 3}
    assert document.chunks[0].location == {"page": 1}
    assert "northern coast" in document.chunks[0].content
    assert {c.location["page"] for c in document.chunks[1:]} == {3}, "the empty page has none"


def test_a_pdf_locked_only_against_changes_is_read(count, make_pdf):
    data = make_pdf(["Harbour dues for 1902."], owner_password="clerk")

    document = parse_document("dues.pdf", data, count, SMALL)

    assert "Harbour dues" in document.chunks[0].content


@pytest.mark.parametrize(
    ("name", "kind", "language"),
    [
        ("guide.md", "markdown", None),
        ("notes.txt", "text", None),
        ("NOTES", "text", None),
        ("app.py", "code", "python"),
        ("index.tsx", "code", "tsx"),
        ("Makefile", "code", "make"),
        ("main.go", "code", "go"),
    ],
)
def test_the_file_name_chooses_the_chunker(count, name, kind, language):
    document = parse_document(name, b"all: build\n\nSome words here.\n", count, ChunkSizes())

    assert document.kind == kind
    assert document.meta.get("language") == language
