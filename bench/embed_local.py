"""Local embedder throughput against sentence-transformers + torch, on the same real chunks.

    python bench/embed_local.py [--torch-python /path/to/python-with-sentence-transformers]
                                [--queries-only]

Prints one JSON line: throughput on chunks, and the latency of one short query embedded alone
(what every search pays), p50/p99 over QUERIES queries cut from the chunks' first words. The
chunks are ~200-token pieces of the Python sources and docs installed next to Lugh (a fixed,
seeded selection). The torch half runs in a subprocess of a Python that
has sentence-transformers (torch is never one of Lugh's dependencies); without one it is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import random
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from lugh.knowledge.embedders.local import LocalEmbedder

CHUNKS = 2000
CHUNK_TOKENS = 200
CHUNKS_PER_FILE = 2
ROUNDS = 4
QUERIES = 200
SUFFIXES = (".py", ".md", ".rst", ".txt")

# Runs in the other Python: encodes each line of JSON chunks it reads, answers a line per job.
TORCH_WORKER = """
import base64, json, sys, time
import numpy as np, sentence_transformers, torch
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
version = f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
print(json.dumps({"version": version, "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    chunks = json.loads(line)
    start = time.perf_counter()
    vectors = model.encode(chunks, batch_size=32, normalize_embeddings=True)
    seconds = time.perf_counter() - start
    data = base64.b64encode(np.ascontiguousarray(vectors, np.float32).tobytes()).decode()
    print(json.dumps({"seconds": seconds, "vectors": data}), flush=True)
"""


class TorchWorker:
    """sentence-transformers + torch in a subprocess of a Python that has them."""

    def __init__(self, python: str, model_dir: Path) -> None:
        self._process = subprocess.Popen(
            [python, "-c", TORCH_WORKER, str(model_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.info = self._answer()

    def embed(self, chunks: list[str]) -> tuple[float, np.ndarray]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(chunks) + "\n")
        self._process.stdin.flush()
        answer = self._answer()
        vectors = np.frombuffer(base64.b64decode(answer["vectors"]), np.float32)
        return answer["seconds"], vectors.reshape(len(chunks), -1)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait()

    def _answer(self) -> dict:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise SystemExit(f"the sentence-transformers worker died ({self._process.wait()})")
        return json.loads(line)


def real_chunks(tokenizer: Tokenizer) -> list[str]:
    """CHUNKS pieces of CHUNK_TOKENS tokens from installed sources, the same on every run."""
    site = Path(sysconfig.get_paths()["purelib"])
    files = sorted(p for p in site.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    random.Random(0).shuffle(files)
    chunks: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        for start in range(0, len(offsets) - CHUNK_TOKENS + 1, CHUNK_TOKENS)[:CHUNKS_PER_FILE]:
            end = start + CHUNK_TOKENS - 1
            chunks.append(text[offsets[start][0] : offsets[end][1]])
            if len(chunks) == CHUNKS:
                return chunks
    raise SystemExit(f"only {len(chunks)} chunks of real text found under {site}")


def timed(embedder: LocalEmbedder, chunks: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = asyncio.run(embedder.embed(chunks))
    return time.perf_counter() - start, vectors


def query_latency(embedder: LocalEmbedder, chunks: list[str]) -> dict:
    """One short text at a time through `embed`, as a search embeds its query."""
    words = [c.split() for c in chunks]
    queries = [" ".join(w[: 6 + n % 15]) for n, w in enumerate(words[:QUERIES])]

    async def run() -> list[float]:
        for query in queries[:20]:
            await embedder.embed([query])
        ms = []
        for query in queries:
            start = time.perf_counter()
            await embedder.embed([query])
            ms.append((time.perf_counter() - start) * 1000)
        return sorted(ms)

    ms = asyncio.run(run())
    return {
        "queries": len(queries),
        "mean_tokens": round(float(np.mean([embedder.count_tokens(q) for q in queries])), 1),
        "p50_ms": round(ms[len(ms) // 2], 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", help="a Python with sentence-transformers and torch")
    parser.add_argument("--queries-only", action="store_true",
                        help="only the single-query latency, not the throughput comparison")
    args = parser.parse_args()
    torch_python = args.torch_python
    if torch_python is None and importlib.util.find_spec("sentence_transformers"):
        torch_python = sys.executable

    embedder = LocalEmbedder()
    counter = Tokenizer.from_file(str(embedder.model_dir / "tokenizer.json"))
    counter.no_truncation()
    counter.no_padding()
    chunks = real_chunks(counter)
    if args.queries_only:
        print(json.dumps({"bench": "embed_local", "query": query_latency(embedder, chunks)}))
        return
    tokens = [embedder.count_tokens(c) for c in chunks]

    torch = TorchWorker(torch_python, embedder.model_dir) if torch_python else None
    # Both load and warm up first; then they take turns on the same slices (A B B A …), so
    # whatever else this machine is doing falls on both alike.
    timed(embedder, chunks[:64])
    if torch is not None:
        torch.embed(chunks[:64])
    seconds = {"local": 0.0, "torch": 0.0}
    vectors: dict[str, list[np.ndarray]] = {"local": [], "torch": []}
    for turn, start in enumerate(range(0, len(chunks), len(chunks) // ROUNDS)):
        piece = chunks[start : start + len(chunks) // ROUNDS]
        sides = ["local", "torch"] if torch is not None else ["local"]
        for side in sides if turn % 2 == 0 else sides[::-1]:
            took, got = timed(embedder, piece) if side == "local" else torch.embed(piece)
            seconds[side] += took
            vectors[side].append(got)

    local_rate = len(chunks) / seconds["local"]
    result: dict = {
        "bench": "embed_local",
        "chunks": len(chunks),
        "mean_tokens": round(float(np.mean(tokens)), 1),
        "local_chunks_per_s": round(local_rate, 1),
        "sentence_transformers_chunks_per_s": None,
        "ratio": None,
    }
    if torch is not None:
        torch.close()
        torch_rate = len(chunks) / seconds["torch"]
        cosines = (np.vstack(vectors["local"]) * np.vstack(vectors["torch"])).sum(axis=1)
        result |= {
            "sentence_transformers_chunks_per_s": round(torch_rate, 1),
            "ratio": round(local_rate / torch_rate, 2),
            "min_cosine_to_sentence_transformers": round(float(cosines.min()), 6),
            "reference": torch.info["version"],
            "torch_threads": torch.info["threads"],
        }
    result["query"] = query_latency(embedder, chunks)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
