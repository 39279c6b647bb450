import numpy as np


async def test_a_vector_written_comes_back_equal(pool):
    await pool.execute("CREATE TABLE v (id int PRIMARY KEY, e vector(3))")
    await pool.execute("INSERT INTO v VALUES (1, $1)", np.array([0.5, -1.0, 2.0]))

    back = await pool.fetchval("SELECT e FROM v WHERE id = 1")

    assert np.allclose(back.to_numpy(), [0.5, -1.0, 2.0])


async def test_the_nearest_vector_is_found_by_cosine_distance(pool):
    await pool.execute("CREATE TABLE v (id int PRIMARY KEY, e vector(2))")
    await pool.executemany(
        "INSERT INTO v VALUES ($1, $2)", [(1, [1.0, 0.0]), (2, [0.0, 1.0]), (3, [0.7, 0.7])]
    )

    nearest = await pool.fetchval("SELECT id FROM v ORDER BY e <=> $1 LIMIT 1", [0.1, 1.0])

    assert nearest == 2


async def test_each_test_gets_its_own_fresh_database(pool):
    assert await pool.fetchval("SELECT count(*) FROM projects") == 0
    await pool.execute("INSERT INTO projects (name, repo_path) VALUES ('a', '/tmp/a')")
