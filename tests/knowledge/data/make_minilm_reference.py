"""Regenerate minilm_reference.json with sentence-transformers + torch (never Lugh's venv).

    /tmp/st/bin/python tests/knowledge/data/make_minilm_reference.py MODEL_DIR
"""

import codecs
import json
import sys
import this  # noqa: F401  (prints the Zen of Python; its text is the long reference input)
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

ZEN = codecs.decode(this.s, "rot13")
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Lugh runs a small team of AI engineers that you direct from your phone.",
    "def add(a, b):\n    return a + b  # sum two numbers",
    "Café naïve résumé — Ünïcödé, 日本語のテキスト and emoji 🚀.",
    "Retrieval is hybrid: vector search plus Postgres full-text search, fused by reciprocal "
    "rank, filtered by silo, with results that carry their source and location.",
    ZEN + "\n\n" + ZEN,  # well past the model's 256-token window: checks truncation
]


def main(model_dir: str) -> None:
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "generated_by": (
            f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
        ),
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "embeddings": [[round(float(x), 6) for x in v] for v in vectors],
    }
    target = Path(__file__).with_name("minilm_reference.json")
    target.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {len(TEXTS)} vectors to {target}")


if __name__ == "__main__":
    main(sys.argv[1])
