"""PostgreSQL through asyncpg: the pool, migrations and one repository module per table group.
All SQL of the service lives here; functions take the connection they run on and return our
types."""
