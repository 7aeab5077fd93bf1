"""Account test plumbing: a fresh account server per test (own SQLite), on the session's auth."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog

from tests.fixtures.account import AccountService, running_account, test_account_config
from viarte.account.v1 import account_pb2
from viarte.type.v1 import job_pb2


@pytest.fixture(autouse=True)
def _server_logs_off_stdout() -> Iterator[None]:
    """The servers of these tests run in the test process, and structlog's default logger (no
    ``configure_logging`` here) prints to whatever ``sys.stdout`` is at each call. Typer's CliRunner
    swaps ``sys.stdout`` process-wide while a command runs, so a server line written meanwhile (a
    webhook attempt finishing in the background) landed in the command's output and broke its
    ``--json`` parse: the flake of test_cli_usage_and_webhooks_commands. Server lines go to stderr."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
    yield
    structlog.configure(**saved)


@pytest_asyncio.fixture(loop_scope="session")
async def account(tmp_path: Path, auth_service: Any) -> AsyncIterator[AccountService]:
    async with running_account(test_account_config(tmp_path / "account", auth_service)) as service:
        yield service


async def record(
    account: AccountService, user_id: str, *, kind: int = account_pb2.JOB_KIND_GENERATION,
    state: int = job_pb2.JOB_STATE_SUCCEEDED, job_id: str = "", model: str = "tiny-wan", api_key_id: str = "",
    **quantities: Any,
) -> account_pb2.RecordJobOutcomeResponse:
    """RecordJobOutcome with a service token, as inference/render will call it."""
    request = account_pb2.RecordJobOutcomeRequest(
        job_id=job_id or str(uuid.uuid4()), kind=kind, model=model, user_id=user_id, api_key_id=api_key_id,  # type: ignore[arg-type]
        state=state, quantities=account_pb2.Quantities(**quantities), result_asset_ids=["asset-1"],  # type: ignore[arg-type]
    )
    return await account.internal.RecordJobOutcome(request, metadata=await account.service_metadata(), timeout=30)
