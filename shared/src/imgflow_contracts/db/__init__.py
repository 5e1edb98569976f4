"""PostgreSQL access (asyncpg): pool, migrations and the queries services share."""
