import json
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from lugh.knowledge.embedders import EmbedderError
from lugh.knowledge.embedders.openai import OpenAIEmbedder
from tests.fakes.openai import API_KEY, FakeOpenAI, fake_embedding


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def embedder(fake_openai) -> AsyncIterator[OpenAIEmbedder]:
    embedder = OpenAIEmbedder(api_key=API_KEY, base_url=fake_openai.base_url)
    yield embedder
    await embedder.aclose()


def inputs_sent(fake_openai: FakeOpenAI) -> list[list[str]]:
    return [json.loads(r.body)["input"] for r in fake_openai.requests_to("/v1/embeddings")]


async def test_vectors_come_back_normalised_in_the_order_given(embedder):
    texts = ["first", "second", "third"]

    vectors = await embedder.embed(texts)

    assert vectors.dtype == np.float32 and vectors.shape == (3, 1536)
    assert np.allclose(vectors, np.vstack([fake_embedding(t) for t in texts]), atol=1e-6)


async def test_the_sdk_asks_for_text_embedding_3_small(embedder, fake_openai):
    await embedder.embed(["hello"])

    [request] = fake_openai.requests_to("/v1/embeddings")
    assert json.loads(request.body)["model"] == "text-embedding-3-small"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_many_texts_are_split_into_requests_of_256(embedder, fake_openai):
    texts = [f"chunk number {i}" for i in range(600)]

    vectors = await embedder.embed(texts)

    assert [len(batch) for batch in inputs_sent(fake_openai)] == [256, 256, 88]
    assert sum(inputs_sent(fake_openai), []) == texts
    assert np.allclose(vectors[599], fake_embedding("chunk number 599"), atol=1e-6)


async def test_a_rate_limit_is_waited_out_and_the_request_retried(embedder, fake_openai):
    fake_openai.fail_next(429)

    vectors = await embedder.embed(["once more"])

    assert len(fake_openai.requests_to("/v1/embeddings")) == 2
    assert np.allclose(vectors[0], fake_embedding("once more"), atol=1e-6)


async def test_a_server_error_is_retried(embedder, fake_openai):
    fake_openai.fail_next(503)

    vectors = await embedder.embed(["after the outage"])

    assert len(fake_openai.requests_to("/v1/embeddings")) == 2
    assert vectors.shape == (1, 1536)


async def test_an_error_that_outlasts_the_retries_is_one_clear_sentence(fake_openai):
    fake_openai.fail_next(429, times=3)
    embedder = OpenAIEmbedder(api_key=API_KEY, base_url=fake_openai.base_url, max_retries=1)
    try:
        with pytest.raises(EmbedderError, match="answered 429") as failed:
            await embedder.embed(["never"])
    finally:
        await embedder.aclose()

    assert len(fake_openai.requests_to("/v1/embeddings")) == 2
    assert "\n" not in str(failed.value) and str(failed.value).endswith(".")


async def test_a_wrong_api_key_is_reported_and_not_retried(fake_openai):
    embedder = OpenAIEmbedder(api_key="sk-wrong", base_url=fake_openai.base_url)
    try:
        with pytest.raises(EmbedderError, match="answered 401.*OPENAI_API_KEY"):
            await embedder.embed(["hello"])
    finally:
        await embedder.aclose()

    assert len(fake_openai.requests_to("/v1/embeddings")) == 1


async def test_an_empty_list_makes_no_request(embedder, fake_openai):
    vectors = await embedder.embed([])

    assert vectors.shape == (0, 1536)
    assert fake_openai.requests_to("/v1/embeddings") == []


async def test_an_empty_text_is_sent_as_a_space_which_the_api_accepts(embedder, fake_openai):
    vectors = await embedder.embed(["", "words"])

    assert inputs_sent(fake_openai) == [[" ", "words"]]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_tokens_are_estimated_at_four_bytes_each(embedder):
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("four score and seven") == 5
    assert embedder.count_tokens("日本語") == 3
