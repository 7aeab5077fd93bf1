"""Partner API: webhook delivery latency from a job's end to the receiver, on loopback.

A real auth server and a real account server (SQLite, or --database-url PostgreSQL) in this
process, one endpoint registered by a user, and a receiver (HTTP/1.1, its own thread) answering
200. Each job end is ``RecordJobOutcome`` (a batch of one of what the job meters send) with a service token; the
latency is from just before that call to the receiver reading the request (record + outbox commit,
dispatcher wake-up, claim, sign, POST). Jobs end at --rate per second. Printed: p50/p99/max in ms
(goal p99 < 500 ms).

--throughput: create-job throughput with limits and metering on vs off (goal >= 0.9). The shared
job layer (``JobService`` on its own SQLite database, the code path of every Create RPC) creates
--jobs jobs, --concurrency at a time, that end at once: "off" without metering; "on" with metering
(every end recorded with account in the background) and a caller carrying a budget, a create rate
and a concurrent-jobs cap high enough to refuse nothing (so every create is admitted first, from
a block of admissions leased from account: services/kit/jobs/leases.py). The RPC layer in front of create is the same both ways, so this ratio
is a lower bound of the service's.

    .venv/bin/python bench/partner_api.py [--jobs 300] [--rate 50] [--database-url URL]
    .venv/bin/python bench/partner_api.py --throughput [--jobs 300] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from services.account.config import AccountConfig
from services.account.server import build as build_account
from services.auth.config import AuthConfig
from services.auth.server import build as build_auth
from services.kit.auth import ServiceCredentials
from services.kit.config import Secret
from services.kit.ports import free_port
from services.kit.probe import check as probe
from services.kit.server import stop
from viarte.account.v1 import account_pb2, account_pb2_grpc
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.type.v1 import job_pb2

# The kit job tables as the job services migrate them (the tests' migration chain of services/kit/jobs).
JOB_MIGRATIONS = Path(__file__).resolve().parents[1] / "tests" / "kit" / "jobs" / "migrations"


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.arrivals[body.split(b'"job_id":"', 1)[1].split(b'"', 1)[0].decode()] = time.perf_counter()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        # A listen backlog that takes the dispatcher's concurrent connections (the default 5 drops
        # SYNs, and the kernel's retransmit after 1 s would be measured as delivery latency).
        ThreadingHTTPServer.request_queue_size = 128
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="partner-bench-"))
    secret = Secret("bench-" + uuid.uuid4().hex)
    auth_cfg = AuthConfig(port=0, data_dir=str(tmp / "auth"), bcrypt_cost=4, log_level="WARNING", internal_secret=secret)
    auth, auth_port = await build_auth(auth_cfg)
    await auth.start()
    account_cfg = AccountConfig(
        port=0, data_dir=str(tmp / "account"), log_level="WARNING", internal_secret=secret,
        auth_address=f"127.0.0.1:{auth_port}", webhook_allow_private=True, database_url=args.database_url,
    )  # fmt: skip
    account, account_port = await build_account(account_cfg)
    await account.start()
    receiver = Receiver()
    try:
        auth_channel = grpc.aio.insecure_channel(f"127.0.0.1:{auth_port}")
        user = await auth_pb2_grpc.AuthServiceStub(auth_channel).Register(
            auth_pb2.RegisterRequest(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password="bench password 1234")
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{account_port}")
        await account_pb2_grpc.WebhookServiceStub(channel).CreateWebhookEndpoint(
            account_pb2.CreateWebhookEndpointRequest(url=receiver.url),
            metadata=(("authorization", f"Bearer {user.tokens.access_token}"),),
        )
        internal = account_pb2_grpc.AccountInternalServiceStub(channel)
        service_md = await ServiceCredentials(account_cfg).metadata()
        sent: dict[str, float] = {}
        calls: list[float] = []

        async def end_job() -> None:
            job = str(uuid.uuid4())
            sent[job] = time.perf_counter()
            await internal.RecordJobOutcome(account_pb2.RecordJobOutcomeRequest(
                job_id=job, kind=account_pb2.JOB_KIND_RENDER, user_id=user.user.id, state=job_pb2.JOB_STATE_SUCCEEDED,
                quantities=account_pb2.Quantities(video_seconds=2.0),
            ), metadata=service_md)  # fmt: skip
            calls.append((time.perf_counter() - sent[job]) * 1000)

        tasks = []
        for _ in range(args.jobs):
            tasks.append(asyncio.create_task(end_job()))
            await asyncio.sleep(1.0 / args.rate)
        await asyncio.gather(*tasks)
        for _ in range(1200):  # at most a minute for the last deliveries
            if len(receiver.arrivals) >= args.jobs:
                break
            await asyncio.sleep(0.05)
        latencies = sorted((receiver.arrivals[j] - t) * 1000 for j, t in sent.items() if j in receiver.arrivals)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"webhooks delivered: {len(latencies)}/{args.jobs} at {args.rate}/s "
              f"({'postgresql' if args.database_url else 'sqlite'})")  # fmt: skip
        print(f"job end -> receiver: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, "
              f"max {latencies[-1]:.1f} ms (goal p99 < 500 ms)")  # fmt: skip
        print(f"RecordJobOutcome itself: p50 {statistics.median(calls):.1f} ms")
        await channel.close()
        await auth_channel.close()
    finally:
        receiver.server.shutdown()
        await stop(account, grace=0.5)
        await stop(auth, grace=0.5)
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu_seconds(pids: list[int]) -> list[float]:
    """CPU time (user + system) of this process, then of each of ``pids`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = [sum(os.times()[:2])]
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return out


async def _creates(tmp: Path, name: str, metering: Any, caller: Any, args: argparse.Namespace,
                   pids: list[int] = ()) -> tuple[float, list[float]]:  # type: ignore[assignment]
    """(jobs created per second, CPU ms per job of this process and of each of ``pids``) by one
    JobService (jobs end at once; metering records them)."""
    from services.kit.db import make_engine, upgrade
    from services.kit.jobs import HandlerExecutor, JobConfig, JobService, RunningJob

    async def instant(job: RunningJob) -> bytes:
        return b"done"

    engine = make_engine(f"sqlite:///{tmp / (name + '.db')}")
    upgrade(engine, JOB_MIGRATIONS)
    jobs = JobService(engine, HandlerExecutor({"demo": instant}, slots=4),
                      JobConfig(max_queued=args.jobs + 10, replica_id=name), metering=metering)  # fmt: skip
    await jobs.start()
    queue = list(range(args.jobs))

    async def worker() -> None:
        while queue:
            queue.pop()
            await jobs.create(caller.user_id, "demo", b"x", caller=caller, estimated_credits=1)

    started, cpu = time.perf_counter(), _cpu_seconds(list(pids))
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    used = [(b - a) * 1000 / args.jobs for a, b in zip(cpu, _cpu_seconds(list(pids)), strict=True)]
    await jobs.stop(2.0)
    engine.dispose()
    return args.jobs / elapsed, used


def _spawn(env: dict[str, str], *names: str) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env) for name in names]


async def throughput(args: argparse.Namespace) -> None:
    from services.kit.account_client import AccountClient, JobOutcome
    from services.kit.auth import Principal, PrincipalKind
    from services.kit.jobs.metering import Metering, outcome_of
    from services.kit.limits import Limits
    from services.kit.prices import PriceList, Usage

    tmp = Path(tempfile.mkdtemp(prefix="partner-bench-"))
    secret = Secret("bench-" + uuid.uuid4().hex)
    # auth and account in their own processes, as deployed (in this one they would share its CPU).
    auth_port, account_port = free_port(), free_port()
    env = {**os.environ, "VIARTE_INTERNAL_SECRET": secret.reveal(), "VIARTE_LOG_LEVEL": "WARNING",
           "VIARTE_METRICS_PORT": "-1", "VIARTE_AUTH_ADDRESS": f"127.0.0.1:{auth_port}",
           "VIARTE_AUTH_PORT": str(auth_port), "VIARTE_AUTH_DATA_DIR": str(tmp / "auth"), "VIARTE_AUTH_BCRYPT_COST": "4",
           "VIARTE_ACCOUNT_PORT": str(account_port), "VIARTE_ACCOUNT_DATA_DIR": str(tmp / "account"),
           "VIARTE_ACCOUNT_DATABASE_URL": args.database_url}  # fmt: skip
    procs = _spawn(env, "auth", "account")
    for port in (auth_port, account_port):
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(probe, f"127.0.0.1:{port}"):
            assert time.monotonic() < deadline, f"no server on {port}"
            await asyncio.sleep(0.2)
    account_cfg = AccountConfig(internal_secret=secret, auth_address=f"127.0.0.1:{auth_port}",
                                account_address=f"127.0.0.1:{account_port}")  # fmt: skip
    client = AccountClient(account_cfg)

    def describe(record: Any) -> JobOutcome:
        return outcome_of(record, account_pb2.JOB_KIND_RENDER, quantities=Usage(video_seconds=1.0))

    metering = Metering(client, describe, PriceList.from_config(account_cfg), {"demo": account_pb2.JOB_KIND_RENDER})
    roomy = Limits(monthly_credit_budget=10**9, creates_per_minute=10**6, max_concurrent_jobs=10**6)
    user = str(uuid.uuid4())
    limited = Principal(subject=user, kind=PrincipalKind.API_KEY, api_key_id="bench-key", key_limits=roomy,
                        user_limits=roomy)  # fmt: skip
    plain = Principal(subject=user, kind=PrincipalKind.USER)
    try:
        await _creates(tmp, "warmup", None, plain, argparse.Namespace(**{**vars(args), "jobs": 50}))
        print(f"create-job throughput ({args.jobs} jobs, {args.concurrency} concurrent, "
              f"{'postgresql' if args.database_url else 'sqlite'} account), off / on / metering only:")  # fmt: skip
        pids = [p.pid for p in procs]
        ratios, cpu_ratios = [], []
        # Rounds alternate the variants: on a shared machine the load drifts between runs, and
        # back-to-back pairs compare like with like. CPU per create (this process + auth + account)
        # does not depend on what else the machine runs: its off/on ratio is the throughput ratio
        # of a machine that the mesh has to itself and saturates.
        for n in range(args.rounds):
            off, off_cpu = await _creates(tmp, f"off{n}", None, plain, args, pids)
            on, on_cpu = await _creates(tmp, f"on{n}", metering, limited, args, pids)
            metered, metered_cpu = await _creates(tmp, f"metered{n}", metering, plain, args, pids)
            ratios.append(on / off)
            cpu_ratios.append(sum(off_cpu) / sum(on_cpu))
            split = " / ".join("+".join(f"{ms:.1f}" for ms in cpu) for cpu in (off_cpu, on_cpu, metered_cpu))
            print(f"  round {n + 1}: {off:.0f} / {on:.0f} / {metered:.0f} jobs/s (ratio on/off {on / off:.2f}); "
                  f"CPU ms per job (job service+auth+account) {split}")  # fmt: skip
        print(f"  limits and metering on/off: median ratio {statistics.median(ratios):.2f} wall-clock, "
              f"{statistics.median(cpu_ratios):.2f} by CPU per job (goal >= 0.9)")  # fmt: skip
    finally:
        await client.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:  # a loaded machine may need longer than the grace period: never leave one behind
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--throughput", action="store_true", help="create-job throughput, limits+metering on vs off")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="--throughput: off/on/metered rounds (median ratio)")
    parsed = parser.parse_args()
    asyncio.run(throughput(parsed) if parsed.throughput else main(parsed))
