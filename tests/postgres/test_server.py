import psycopg


def test_the_fixture_serves_a_postgresql_15_database(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) // 10000 == 15
