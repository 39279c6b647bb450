from lugh.checkpoints.snapshot import LEFT_OUT, TABLES


async def test_every_table_that_refers_to_a_projects_rows_is_captured_or_left_out_on_purpose(pool):
    references = await pool.fetch(
        "SELECT DISTINCT conrelid::regclass::text AS child, confrelid::regclass::text AS parent "
        "FROM pg_constraint WHERE contype = 'f'"
    )
    reach = {"projects"}
    changed = True
    while changed:
        found = {r["child"] for r in references if r["parent"] in reach} - reach
        changed = bool(found)
        reach |= found

    unaccounted = reach - set(TABLES) - set(LEFT_OUT)
    assert unaccounted == set(), (
        "capture these in lugh/checkpoints/sql/snapshot.sql or name them in LEFT_OUT"
    )
