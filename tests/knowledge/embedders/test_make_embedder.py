import pytest

from lugh.knowledge.embedders import EmbedderError, make_embedder
from lugh.knowledge.embedders.local import LocalEmbedder
from lugh.knowledge.embedders.openai import OpenAIEmbedder


def test_local_is_the_numpy_minilm_with_384_dimensions():
    embedder = make_embedder("local", openai_api_key=None, openai_base_url=None)

    assert isinstance(embedder, LocalEmbedder)
    assert (embedder.name, embedder.dim) == ("sentence-transformers/all-MiniLM-L6-v2", 384)


async def test_openai_is_text_embedding_3_small_with_1536_dimensions():
    embedder = make_embedder(
        "openai", openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1"
    )

    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.dim) == ("openai/text-embedding-3-small", 1536)
    await embedder.aclose()


def test_openai_without_an_api_key_says_to_set_one():
    with pytest.raises(EmbedderError, match="set OPENAI_API_KEY"):
        make_embedder("openai", openai_api_key=None, openai_base_url=None)


def test_an_unknown_kind_is_one_sentence_naming_the_known_ones():
    with pytest.raises(EmbedderError) as unknown:
        make_embedder("word2vec", openai_api_key=None, openai_base_url=None)

    assert str(unknown.value) == (
        "There is no embedder called 'word2vec': set LUGH_EMBEDDER to one of local, openai."
    )
