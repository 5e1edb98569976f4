"""The database schema: SQL migrations and the runner that applies them."""
