"""Job tests run their storms on PostgreSQL too (the backend of N replicas): the throw-away cluster
fixtures are the auth suite's, imported rather than copied."""

from tests.auth.conftest import postgres_database, postgres_server

__all__ = ["postgres_database", "postgres_server"]
