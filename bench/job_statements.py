"""Round trips and CPU per job operation of ``services.kit.jobs`` on a real PostgreSQL (issue 14).

A throw-away cluster (tests/fixtures/postgres.py), one JobService (2 slots, a handler that emits one
progress event), and SQLAlchemy's engine events counting what goes to the server: every statement,
BEGIN, COMMIT and ROLLBACK (each one round trip). Load does not change these counts; the CPU per
operation (this process, all threads) is noisy on a shared machine and printed as a median.

Run: PYTHONPATH=$PWD .venv/bin/python bench/job_statements.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import services.kit.jobs.tables  # noqa: E402,F401
from services.kit.db import make_engine  # noqa: E402
from services.kit.jobs import HandlerExecutor, JobConfig, JobService, RunningJob  # noqa: E402
from tests.fixtures.postgres import PostgresCluster  # noqa: E402
from viarte.type.v1 import job_pb2  # noqa: E402

RUNNING, TERMINAL = job_pb2.JOB_STATE_RUNNING, {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_CANCELLED}


class Counts:
    def __init__(self, engine: Any) -> None:
        self.by: Counter[str] = Counter()
        event.listen(engine, "before_cursor_execute", self._stmt)
        for name in ("begin", "commit", "rollback"):
            event.listen(engine, name, lambda conn, n=name.upper(): self._tx(conn, n))

    def _tx(self, conn: Any, name: str) -> None:
        # An AUTOCOMMIT connection's begin/commit/rollback never reach the server.
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.by[name] += 1

    def _stmt(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        words = statement.split(None, 1)
        self.by[words[0].upper()] += 1
        if words[0].upper() == "UPDATE" and "SKIP LOCKED" in statement and "lease_epoch" in statement:
            self.by["(claim)"] += 1  # not a round trip of its own: counted under UPDATE too

    def total(self) -> int:
        return sum(v for k, v in self.by.items() if not k.startswith("("))


async def main(args: argparse.Namespace) -> None:
    cluster = PostgresCluster()
    cluster.start()
    try:
        engine = make_engine(cluster.create_database("stmts"))
        SQLModel.metadata.create_all(engine)
        gate = asyncio.Event()

        async def handler(job: RunningJob) -> bytes:
            job.emit(job_pb2.Progress(stage=job_pb2.STAGE_RENDERING, fraction=0.5))
            await job.flush()
            if args.hold:
                await gate.wait()
            return b"ok"

        jobs = JobService(engine, HandlerExecutor({"t": handler}, slots=2),
                          JobConfig(max_queued=10_000, replica_id="bench", poll_seconds=30))
        await jobs.start()
        await asyncio.sleep(0.5)
        counts = Counts(engine)
        rows: dict[str, list[tuple[int, float]]] = {}

        def mark() -> tuple[int, float]:
            return counts.total(), time.process_time()

        def note(name: str, start: tuple[int, float]) -> None:
            n, cpu = mark()
            rows.setdefault(name, []).append((n - start[0], (cpu - start[1]) * 1000))

        async def settle() -> None:
            await asyncio.sleep(0.15)  # background writers (announcer, scheduler) finish their part

        for i in range(args.rounds):
            # A job's whole life with a watcher: create → RUNNING seen → terminal; then a get.
            t = mark()
            rec = await jobs.create("u", "t", b"p", request_id=f"life-{i}")
            async for item in jobs.watch("u", "t", rec.id):
                if isinstance(item, job_pb2.JobEvent) and item.state in TERMINAL:
                    break
            await settle()
            note("life: create + watch to the end (all writes)", t)
            t = mark()
            await jobs.get("u", "t", rec.id)
            note("get (ended job)", t)
            # Queued-job operations: fill both slots with held jobs first.
            args.hold = True
            gate.clear()
            held = [await jobs.create("u", "t", b"p") for _ in range(2)]
            await settle()
            waiting = [await jobs.create("u", "t", b"p") for _ in range(3)]
            await settle()
            t = mark()
            rec = await jobs.create("u", "t", b"p")
            await settle()
            note("create (queued behind 3; announcer included)", t)
            t = mark()
            await jobs.get("u", "t", rec.id)
            note("get (queued job)", t)
            t = mark()
            await jobs.cancel("u", "t", waiting[0].id)
            await settle()
            note("cancel of the head of 4 queued (re-announces 3)", t)
            for r in [*waiting[1:], rec]:
                await jobs.cancel("u", "t", r.id)
            args.hold = False
            gate.set()
            await settle()
            t = mark()
            await asyncio.sleep(0.3)
            note("idle 0.3 s after the ends (empty claims)", t)
            del held
        await jobs.stop()
        print(f"{'operation':52s} {'round trips':>11s} {'CPU ms (median)':>16s}")
        for name, values in rows.items():
            stmts = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            print(f"{name:52s} {stmts:11.0f} {cpu:16.2f}")
        print("by kind over the whole run:", dict(counts.by.most_common()))
    finally:
        cluster.remove()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.set_defaults(hold=False)
    asyncio.run(main(parser.parse_args()))
