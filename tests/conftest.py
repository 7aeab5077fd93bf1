"""Root pytest configuration: shared fixtures live in tests/fixtures/<area>.py, one module per area."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.auth",
    "tests.fixtures.storage",
    "tests.fixtures.inference",
    "tests.fixtures.render",
    "tests.fixtures.gateway",
    "tests.fixtures.mesh",
    "tests.fixtures.account",
    "tests.fixtures.ray",
]
