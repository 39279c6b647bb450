"""What a file is (by its name, then its bytes) and which chunker reads it, within size limits."""

from __future__ import annotations

import codecs
import re
from pathlib import PurePosixPath

from lugh.knowledge.chunking.base import ChunkSizes, ParsedDocument, TokenCounter, Unreadable
from lugh.knowledge.chunking.code import chunk_code
from lugh.knowledge.chunking.markdown import chunk_markdown
from lugh.knowledge.chunking.pdf import chunk_pdf
from lugh.knowledge.chunking.text import chunk_text

MAX_TEXT_BYTES = 4 * 1024 * 1024
MAX_PDF_BYTES = 64 * 1024 * 1024
# Longer lines mean minified, generated or encoded data, not prose or code a person wrote.
MAX_LINE_CHARS = 20_000

MARKDOWN = {".md", ".markdown", ".mdx", ".mkd"}
TEXT = {".txt", ".text", ".rst", ".adoc", ".asciidoc", ".org", ".log", ".csv", ".tsv", ".tex"}
CODE = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp",
    ".hpp": "cpp", ".hh": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php",
    ".swift": "swift", ".m": "objective-c", ".lua": "lua", ".pl": "perl", ".r": "r",
    ".jl": "julia", ".dart": "dart", ".zig": "zig", ".nim": "nim", ".ex": "elixir",
    ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml", ".clj": "clojure",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".fish": "shell", ".ps1": "powershell",
    ".sql": "sql", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss",
    ".sass": "sass", ".less": "less", ".vue": "vue", ".svelte": "svelte", ".json": "json",
    ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini", ".cfg": "ini",
    ".conf": "conf", ".xml": "xml", ".proto": "protobuf", ".graphql": "graphql",
    ".gql": "graphql", ".tf": "terraform", ".hcl": "hcl", ".gradle": "gradle",
    ".cmake": "cmake", ".mk": "make", ".dockerfile": "dockerfile",
}
CODE_NAMES = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "containerfile": "dockerfile", "justfile": "just", "gemfile": "ruby", "rakefile": "ruby",
    "vagrantfile": "ruby", "procfile": "procfile",
}
SUPPORTED = "PDF, Markdown, plain text and source code"
# Files that usually hold keys or passwords: never indexed, whoever asks.
_SECRET_NAMES = re.compile(
    r"(?i)^(\.env(\..*)?|.*\.(pem|key|p12|pfx|jks|keystore|kdbx)"
    r"|id_(rsa|dsa|ecdsa|ed25519)(\.pub)?|\.netrc|\.pgpass|\.npmrc|\.pypirc|\.htpasswd"
    r"|credentials(\.json)?|secrets?\.(json|ya?ml|toml))$"
)
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")


def kind_of(name: str) -> tuple[str, str | None] | None:
    """(kind, language) for a file name, or None when the name says nothing (no suffix)."""
    path = PurePosixPath(name)
    suffix = path.suffix.lower()
    if path.name.lower() in CODE_NAMES:
        return "code", CODE_NAMES[path.name.lower()]
    if suffix == ".pdf":
        return "pdf", None
    if suffix in MARKDOWN:
        return "markdown", None
    if suffix in TEXT:
        return "text", None
    if suffix in CODE:
        return "code", CODE[suffix]
    if not suffix:
        return None
    return "unsupported", None


def is_secret(name: str) -> bool:
    return bool(_SECRET_NAMES.match(PurePosixPath(name).name))


def size_limit(name: str) -> int:
    kind = kind_of(name)
    return MAX_PDF_BYTES if kind is not None and kind[0] == "pdf" else MAX_TEXT_BYTES


def parse_document(
    name: str, data: bytes, count: TokenCounter, sizes: ChunkSizes
) -> ParsedDocument:
    """Chunks of the file `name` holding `data`; raises Unreadable with the reason to skip it."""
    if is_secret(name):
        raise Unreadable("may hold keys or passwords, so it was left out")
    kind, language = kind_of(name) or ("text", None)
    if kind == "unsupported":
        suffix = PurePosixPath(name).suffix.lower()
        raise Unreadable(f"is a {suffix} file, a type Lugh does not ingest (it reads {SUPPORTED})")
    limit = size_limit(name)
    if len(data) > limit:
        raise Unreadable(
            f"is {human_size(len(data))}, over the {human_size(limit)} Lugh reads from one file"
        )
    if not data.strip():
        raise Unreadable("is empty")
    if kind == "pdf":
        return chunk_pdf(data, count, sizes)
    text = decode_text(data, name)
    if kind == "markdown":
        title, chunks = chunk_markdown(text, count, sizes)
    elif kind == "code":
        title, chunks = None, chunk_code(text, language or "", count, sizes, path=name)
    else:
        title, chunks = None, chunk_text(text, count, sizes)
    if not chunks:
        raise Unreadable("has no text to index")
    return ParsedDocument(kind, title, chunks, {"language": language} if language else {})


def decode_text(data: bytes, name: str) -> str:
    """`data` as text, or Unreadable when it is binary or machine-generated."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _binary(name) from None
    elif b"\x00" in data:
        raise _binary(name)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            if text.count("\ufffd") > max(8, len(text) // 200):
                raise _binary(name) from None
    if len(_CONTROL.findall(text[:65536])) > max(8, min(len(text), 65536) // 100):
        raise _binary(name)
    longest = max(map(len, text.splitlines()), default=0)
    if longest > MAX_LINE_CHARS:
        raise Unreadable(
            f"has a line of {longest:,} characters, which looks minified or generated rather "
            "than written, so it was not indexed"
        )
    return text.replace("\x00", "")


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} bytes"


def _binary(name: str) -> Unreadable:
    suffix = PurePosixPath(name).suffix
    promised = f"the text its {suffix} name promises" if suffix else "text"
    return Unreadable(f"holds binary data, not {promised}")
