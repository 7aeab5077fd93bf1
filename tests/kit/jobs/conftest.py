"""Job tests run their storms on PostgreSQL too (the backend of N replicas): ``postgres_server`` and
``postgres_database`` are the shared throw-away cluster of tests/fixtures/postgres.py."""
