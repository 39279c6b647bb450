import json

import pytest

from lugh.errors import UserError
from lugh.knowledge.search import Filters, Searcher, _sql
from lugh.projects import ProjectService
from tests.conftest import make_repo

HARBOUR = {
    "tides.md": "# Tides\n\nThe tide rises and falls twice each day, pulled by the moon.\n",
    "engines.md": "# Engines\n\nDiesel engines need fresh oil every 250 hours of running.\n",
    "cars.txt": "Mechanics fix automobiles: they swap worn brake pads and rotate the tyres.\n",
    "soup.md": "# Soup\n\nStir the zorblax into the broth and simmer it gently.\n",
    "weather.md": "# Weather\n\nSea fog rolls in over the harbour on calm autumn mornings.\n",
    "sub/pumps.py": (
        'def start_bilge_pump(level):\n    """Pump water out when the bilge fills."""\n'
    ),
}


@pytest.fixture
async def harbour(knowledge, project, docs):
    folder = docs(HARBOUR, name="harbour")
    result = await knowledge.ingest_paths(project, [folder])
    assert result.documents == len(HARBOUR)
    return folder


BREAD = (
    "Knead the dough for ten minutes until it is smooth and elastic, then leave it to rise in a "
    "warm place for an hour. Shape the loaves, score the tops with a sharp knife and bake them "
    "in a hot oven until the crust is deep brown. Let them cool on a rack before slicing. "
    "Flour for this batch came with delivery note MX-7731."
)


async def test_a_passage_only_full_text_matches_is_found(knowledge, project, pool, embedder):
    await knowledge.ingest_text(project, BREAD, title="bread")
    await knowledge.ingest_text(project, "Mooring permits have numbers such as MX-7730.", title="a")
    await knowledge.ingest_text(project, "Permit MX-7371 covers the north pontoon.", title="b")
    searcher = Searcher(pool, embedder, candidates=2)
    silo = await knowledge.silos.get(project)
    vector = (await embedder.embed(["MX-7731"]))[0]
    nearest = {chunk_id for chunk_id, _ in await searcher.nearest(silo, vector, 2)}
    bread = await pool.fetchval("SELECT c.id FROM chunks c WHERE content LIKE 'Knead%'")

    hits = await searcher.search(project, "MX-7731", k=2)

    assert bread not in nearest, "vector search alone misses it"
    assert bread in [h.chunk_id for h in hits]
    assert next(h for h in hits if h.chunk_id == bread).similarity is None


async def test_a_paraphrase_sharing_no_word_is_found_by_meaning(knowledge, project, harbour, pool):
    query = "How do I repair my car?"

    hits = await knowledge.search(project, query, k=3)

    assert hits[0].path == "cars.txt"
    shares_a_word = await pool.fetchval(
        "SELECT tsv @@ to_tsquery('simple', $1) FROM chunks WHERE content LIKE 'Mechanics%'",
        " | ".join(["repair", "car"]),
    )
    assert shares_a_word is False


async def test_results_carry_text_source_location_and_score(knowledge, project, harbour):
    answer = await knowledge.query_knowledge("When does the tide turn?", project, k=2)

    [first, second] = answer["results"]
    assert first.keys() == {"text", "source", "path", "title", "location", "score"}
    assert first["path"] == "tides.md" and first["title"] == "Tides"
    assert "pulled by the moon" in first["text"]
    assert first["source"] == str(harbour.resolve())
    assert first["location"] == {"heading": ["Tides"], "lines": [1, 3]}
    assert 0 < second["score"] <= first["score"] <= 1
    json.dumps(answer)


async def test_a_query_never_returns_another_silos_chunks(
    knowledge, project, harbour, pool, tmp_path
):
    secret = "The zorblax recipe is secret."
    await knowledge.ingest_text(project, secret, title="private", silo="vault")
    other = make_repo(tmp_path / "other-repo")
    await ProjectService(pool, tmp_path / "data").register("other", str(other))
    await knowledge.ingest_text("other", "Zorblax soup is served on Fridays.", title="menu")

    mine = await knowledge.search(project, "zorblax recipe", k=10)
    vault = await knowledge.search(project, "zorblax recipe", k=10, silo="vault")
    theirs = await knowledge.search("other", "zorblax recipe", k=10)

    assert {h.path for h in mine} <= set(HARBOUR)
    assert [h.path for h in vault] == ["private.md"]
    assert [h.path for h in theirs] == ["menu.md"]


async def test_filters_narrow_by_source_path_prefix_and_kind(knowledge, project, harbour, docs):
    extra = docs({"fog.md": "# Fog\n\nFog horns sound every thirty seconds.\n"}, name="extra")
    await knowledge.ingest_paths(project, [extra])
    question = "fog over the water"

    by_source = await knowledge.search(project, question, filters=Filters(source=str(extra)))
    by_prefix = await knowledge.search(project, question, filters=Filters(path_prefix="sub/"))
    by_kind = await knowledge.search(project, question, filters=Filters(kind="code"))
    unfiltered = await knowledge.search(project, question, k=10)

    assert [h.path for h in by_source] == ["fog.md"]
    assert [h.path for h in by_prefix] == ["sub/pumps.py"]
    assert [h.path for h in by_kind] == ["sub/pumps.py"]
    assert {"fog.md", "weather.md"} <= {h.path for h in unfiltered}


async def test_an_empty_question_is_refused_in_one_sentence(knowledge, project):
    with pytest.raises(UserError, match="^The question is empty; ask something"):
        await knowledge.search(project, "   ")


async def test_a_project_with_no_knowledge_yet_finds_nothing(knowledge, project):
    assert await knowledge.search(project, "anything at all") == []


@pytest.mark.parametrize(
    ("query", "filtered"),
    [("nearest", False), ("nearest", True), ("hybrid", False), ("hybrid", True)],
)
async def test_vector_search_can_use_the_partial_hnsw_index(
    knowledge, project, harbour, pool, local_embedder, query, filtered
):
    silo = await knowledge.silos.get(project)
    vector = (await local_embedder.embed(["tides"]))[0]
    sql = _sql(query, silo.dim, filtered, 4 if query == "nearest" else 7)
    args = [vector, silo.id, 10] if query == "nearest" else [vector, silo.id, 10, "tides", 5, 100]
    if filtered:
        args += [None, "sub/", None]

    async with pool.acquire() as conn, conn.transaction():
        # Tiny tables favour other plans; forbidding them shows whether the index applies.
        await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)

    assert "chunks_hnsw_384" in plan
