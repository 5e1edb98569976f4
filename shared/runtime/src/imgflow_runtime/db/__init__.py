"""PostgreSQL access (asyncpg): the pool and the queries several services share."""
