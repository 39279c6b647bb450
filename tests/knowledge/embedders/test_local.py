import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lugh.knowledge.embedders import EmbedderError
from lugh.knowledge.embedders.blas import _openblas_set_num_threads_local, one_blas_thread
from lugh.knowledge.embedders.local import LocalEmbedder, default_model_dir

REFERENCE = Path(__file__).parents[1] / "data" / "minilm_reference.json"
WORDS = "the owner asks the team to fix the failing build before the release goes out".split()


def text_of(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


async def test_vectors_match_sentence_transformers_on_the_reference_texts(embedder):
    reference = json.loads(REFERENCE.read_text())
    expected = np.array(reference["embeddings"], np.float32)

    vectors = await embedder.embed(reference["texts"])

    cosines = (vectors * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.9999, cosines


async def test_vectors_are_float32_unit_length_with_384_dimensions(embedder):
    vectors = await embedder.embed(["a short one", text_of(120)])

    assert (embedder.dim, vectors.dtype, vectors.shape) == (384, np.float32, (2, 384))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_vectors_come_back_in_the_order_given_across_length_sorted_batches(embedder):
    texts = [text_of(n) for n in (40, 3, 90, 1, 17, 60, 5, 33)]
    small_batches = LocalEmbedder(embedder.model_dir, tokens_per_batch=128, threads=2)

    together = await small_batches.embed(texts)
    alone = np.vstack([await embedder.embed([text]) for text in texts])

    assert np.allclose(together, alone, atol=1e-5)


async def test_one_text_alone_embeds_as_it_does_in_a_batch_short_long_or_past_the_window(
    embedder,
):
    texts = [text_of(6), text_of(150), text_of(400)]

    batched = await embedder.embed([*texts, text_of(20)])
    alone = np.vstack([await embedder.embed([text]) for text in texts])

    assert np.allclose(alone, batched[:3], atol=1e-5)


def test_one_blas_thread_holds_only_inside_its_block():
    set_local = _openblas_set_num_threads_local()
    # scripts/install.sh installs numpy from PyPI, whose wheels bundle OpenBLAS.
    assert set_local is not None, "numpy's BLAS is not OpenBLAS: one_blas_thread does nothing"
    before = set_local(3)
    try:
        with one_blas_thread():
            assert set_local(1) == 1
        assert set_local(3) == 3
    finally:
        set_local(before)


async def test_an_empty_list_gives_an_empty_384_column_array(embedder):
    vectors = await embedder.embed([])

    assert vectors.shape == (0, 384) and vectors.dtype == np.float32


async def test_a_text_longer_than_the_window_is_cut_to_its_first_256_tokens(embedder):
    long = text_of(400)

    vectors = await embedder.embed([long, long + " and a different ending nobody reads"])

    assert embedder.max_seq_length == 256
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)


async def test_an_empty_text_still_gets_a_unit_vector(embedder):
    vectors = await embedder.embed([""])

    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


async def test_tampered_weights_are_refused_with_one_clear_sentence(tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(default_model_dir(), model_dir)
    weights = model_dir / "model.safetensors"
    with weights.open("r+b") as f:
        f.seek(weights.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))

    with pytest.raises(EmbedderError, match="not the expected file") as refused:
        await LocalEmbedder(model_dir).embed(["anything"])

    assert "\n" not in str(refused.value) and str(refused.value).endswith(".")


def test_a_missing_model_directory_is_reported_as_such(tmp_path):
    with pytest.raises(EmbedderError, match="cannot be read"):
        LocalEmbedder(tmp_path / "nowhere").load()


def test_tokens_are_counted_without_special_tokens_or_truncation(embedder):
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("Hello, world") == 3
    assert embedder.count_tokens(text_of(400)) == 400
    assert embedder.max_tokens == 254


async def test_embedding_leaves_the_event_loop_free(embedder):
    texts = [text_of(100)] * 8
    work = asyncio.create_task(embedder.embed(texts))
    turns = 0
    while not work.done():
        await asyncio.sleep(0)
        turns += 1

    assert (await work).shape == (8, 384)
    assert turns > 10
