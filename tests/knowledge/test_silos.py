import numpy as np
import pytest

from lugh.errors import NotFound
from lugh.knowledge.service import KnowledgeService
from lugh.knowledge.silos import EmbedderMismatch, InvalidSiloName


class ShortEmbedder:
    """A real, different embedder: MiniLM's first 128 dimensions, renormalised."""

    name = "minilm-first-128"
    dim = 128

    def __init__(self, inner) -> None:
        self.inner = inner
        self.max_tokens = inner.max_tokens

    async def embed(self, texts: list[str]) -> np.ndarray:
        full = (await self.inner.embed(texts))[:, : self.dim]
        return full / np.linalg.norm(full, axis=1, keepdims=True)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


async def test_the_default_silo_is_created_on_first_use_with_the_embedders_name_and_size(
    knowledge, project, pool
):
    silo = await knowledge.silos.get(project)

    assert (silo.name, silo.project) == ("default", project)
    assert (silo.embedder, silo.dim) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    assert await knowledge.silos.get(project) == silo
    assert await pool.fetchval("SELECT count(*) FROM silos") == 1


async def test_a_project_can_have_more_silos_by_name(knowledge, project):
    await knowledge.ingest_text(project, "Notes.", title="n", silo="research")
    await knowledge.silos.get(project)

    assert [s.name for s in await knowledge.silos.list(project)] == ["default", "research"]


async def test_a_silo_name_breaks_no_rules(knowledge, project):
    with pytest.raises(InvalidSiloName, match="is not a valid silo name"):
        await knowledge.silos.get(project, "../etc")


async def test_a_silo_of_a_project_that_does_not_exist_is_not_found(knowledge):
    with pytest.raises(NotFound, match="There is no project named 'ghost'."):
        await knowledge.silos.get("ghost")


async def test_switching_embedders_on_a_silo_is_refused_with_a_clear_sentence(
    knowledge, project, pool, local_embedder
):
    await knowledge.ingest_text(project, "The harbour opens at dawn.", title="hours")
    switched = KnowledgeService(pool, ShortEmbedder(local_embedder))

    with pytest.raises(EmbedderMismatch) as refused:
        await switched.ingest_text(project, "More.", title="more")
    with pytest.raises(EmbedderMismatch):
        await switched.search(project, "when does it open")

    assert str(refused.value) == (
        "The knowledge silo 'default' of project 'demo' holds vectors from "
        "sentence-transformers/all-MiniLM-L6-v2 (384 dimensions) but Lugh now embeds with "
        "minilm-first-128 (128 dimensions); set LUGH_EMBEDDER back, or re-embed the silo with "
        "`lugh ingest --reembed --project demo`."
    )
    assert await pool.fetchval("SELECT count(*) FROM documents") == 1


async def test_a_silo_re_embedded_on_request_is_searched_with_the_new_embedder(
    knowledge, project, pool, local_embedder, docs
):
    folder = docs({"hours.md": "# Hours\n\nThe harbour opens at dawn.\n",
                   "fees.md": "# Fees\n\nMooring costs ten pounds a night.\n"})
    await knowledge.ingest_paths(project, [folder])
    switched = KnowledgeService(pool, ShortEmbedder(local_embedder))
    seen = []

    silo = await switched.silos.reembed(project, on_progress=seen.append)

    assert (silo.embedder, silo.dim) == ("minilm-first-128", 128)
    assert seen == [2]
    assert await pool.fetchval("SELECT array_agg(DISTINCT vector_dims(embedding)) FROM chunks") == [
        128
    ]
    hits = await switched.search(project, "how much is a night's mooring", k=1)
    assert hits[0].path == "fees.md"
    again = await switched.ingest_paths(project, [folder])
    assert again.unchanged == 2
    with pytest.raises(EmbedderMismatch):
        await knowledge.search(project, "mooring")


async def test_removing_a_silo_removes_its_knowledge(knowledge, project, pool):
    await knowledge.ingest_text(project, "Temporary notes.", title="tmp", silo="scratch")

    await knowledge.silos.remove(project, "scratch")

    assert await pool.fetchval("SELECT count(*) FROM chunks") == 0
    with pytest.raises(NotFound, match="has no knowledge silo named 'scratch'"):
        await knowledge.silos.remove(project, "scratch")
