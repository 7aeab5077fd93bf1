"""N replicas of a job service on one PostgreSQL (issue 14): two JobService processes
(tests/kit/jobs/replica.py) share one job table. Handler executions are counted in a log file
(flushed per line, so they survive kill -9), never in a process's memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from services.kit.db import make_engine, upgrade
from services.kit.jobs.store import JobStore
from tests.kit.jobs.replica import TcpProxy, call, watch
from viarte.type.v1 import job_pb2

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = Path(__file__).parent / "migrations"
QUEUED, RUNNING, SUCCEEDED, CANCELLED = (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING,
                                         job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_CANCELLED)
TERMINAL = {SUCCEEDED, CANCELLED, job_pb2.JOB_STATE_FAILED}
LEASE = 2.0  # seconds: short, so take-overs happen soon; renewed every 0.67 s even on a loaded machine


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[str]
    port: int
    stderr: Path

    def call(self, **request: Any) -> dict[str, Any]:
        return call(self.port, **request)

    def create(self, **request: Any) -> dict[str, Any]:
        answer = self.call(op="create", **request)
        assert "record" in answer, answer
        return dict(answer["record"])

    def get(self, job_id: str) -> dict[str, Any]:
        return dict(self.call(op="get", id=job_id)["record"])


@dataclass
class Cluster:
    url: str
    log: Path
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)

    def start(self, name: str, *, url: str | None = None, slots: int = 2, **extra: str) -> Replica:
        stderr = self.tmp / f"{name}.stderr"
        args = [sys.executable, "-m", "tests.kit.jobs.replica", "--url", url or self.url, "--name", name,
                "--log", str(self.log), "--lease", str(LEASE), "--poll", "0.5", "--slots", str(slots)]
        for key, value in extra.items():
            args += [f"--{key.replace('_', '-')}", value]
        env = {"PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # from scratch
        proc = subprocess.Popen(args, cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=stderr.open("w"))
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until READY (or the process died)
        assert line.startswith("READY "), f"{name} did not start: {stderr.read_text()[-3000:]}"
        replica = Replica(name, proc, int(line.split()[1]), stderr)
        self.replicas.append(replica)
        return replica

    def lines(self) -> list[tuple[str, str, str, int]]:
        """(what, job id, replica, attempt) per handler step logged by every replica."""
        if not self.log.exists():
            return []
        return [(w, j, r, int(a)) for w, j, r, a in (ln.split() for ln in self.log.read_text().splitlines())]

    def runner(self, job_id: str, deadline_s: float = 60) -> str:
        """The replica whose handler started ``job_id`` (first start)."""
        return _until(lambda: next((r for w, j, r, _ in self.lines() if w == "start" and j == job_id), None),
                      deadline_s, f"job {job_id} never started")

    def named(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def other(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name != name)


def _until(probe: Callable[[], Any], deadline_s: float, failure: str) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(failure)
        time.sleep(0.05)


def _settled(replica: Replica, job_id: str, deadline_s: float = 60) -> dict[str, Any]:
    return dict(_until(lambda: (r := replica.get(job_id))["state"] in TERMINAL and r, deadline_s,
                       f"job {job_id} never ended"))


@pytest.fixture
def cluster(postgres_database: Callable[[], str], tmp_path: Path) -> Iterator[Cluster]:
    url = postgres_database()
    engine = make_engine(url)
    upgrade(engine, MIGRATIONS)
    engine.dispose()
    c = Cluster(url, tmp_path / "executions.log", tmp_path)
    try:
        yield c
    finally:
        for r in c.replicas:
            if r.proc.poll() is None:
                os.kill(r.proc.pid, signal.SIGCONT)  # a test may have paused it
                r.proc.kill()
            r.proc.wait(30)


def _events(url: str, job_id: str) -> list[job_pb2.JobEvent]:
    engine = make_engine(url)
    try:
        return JobStore(engine).events(job_id, 0)
    finally:
        engine.dispose()


def test_concurrent_creates_over_two_replicas_run_each_job_exactly_once(cluster: Cluster) -> None:
    a, b = cluster.start("A"), cluster.start("B")
    with ThreadPoolExecutor(20) as pool:
        created = list(pool.map(lambda i: (a, b)[i % 2].create(params={"steps": 3, "step_s": 0.02}), range(20)))
    ids = [r["id"] for r in created]
    records = [_settled((a, b)[i % 2], jid) for i, jid in enumerate(ids)]
    assert [r["state"] for r in records] == [SUCCEEDED] * 20
    assert all(r["attempts"] == 1 for r in records)
    starts = Counter(j for w, j, _, _ in cluster.lines() if w == "start")
    finishes = Counter(j for w, j, _, _ in cluster.lines() if w == "finish")
    assert starts == Counter(ids) and finishes == Counter(ids)  # each exactly once
    assert {r for _, _, r, _ in cluster.lines()} == {"A", "B"}  # both replicas took part
    for jid in ids:
        seqs = [e.sequence for e in _events(cluster.url, jid)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_kill_9_the_runner_the_other_replica_finishes_and_a_watch_resumes_there(cluster: Cluster) -> None:
    cluster.start("A")
    cluster.start("B")
    job = cluster.replicas[0].create(params={"steps": 40, "step_s": 0.05})
    runner = cluster.named(cluster.runner(job["id"]))
    survivor = cluster.other(runner.name)
    seen: list[dict[str, Any]] = []
    for item in watch(runner.port, job["id"]):  # a watcher connected to the replica that dies
        if "event" in item:
            seen.append(item["event"])
            if item["event"]["message"] == f"{runner.name}:3":
                break
    runner.proc.kill()  # kill -9
    runner.proc.wait(30)
    last = seen[-1]["seq"]
    resumed = [item["event"] for item in watch(survivor.port, job["id"], after=last) if "event" in item]
    seqs = [e["seq"] for e in seen + resumed]
    assert seqs == list(range(1, seqs[-1] + 1))  # no gap, no duplicate, across the two replicas
    assert resumed[-1]["state"] == SUCCEEDED
    final = survivor.get(job["id"])
    assert final["state"] == SUCCEEDED and final["attempts"] == 2 and final["result"] == survivor.name
    finishes = [(j, r) for w, j, r, _ in cluster.lines() if w == "finish"]
    assert finishes == [(job["id"], survivor.name)]  # exactly once, by the survivor


def test_cancel_sent_to_the_replica_not_running_the_job(cluster: Cluster) -> None:
    cluster.start("A")
    cluster.start("B")
    job = cluster.replicas[0].create(params={"steps": 600, "step_s": 0.05})
    runner = cluster.runner(job["id"])
    other = cluster.other(runner)
    watcher = watch(other.port, job["id"])
    next(watcher)  # the record: the watch is subscribed on the other replica
    sent = time.monotonic()
    answer = other.call(op="cancel", id=job["id"])["record"]
    assert answer["state"] == RUNNING and answer["cancel_requested"]
    last = [item["event"] for item in watcher if "event" in item][-1]
    elapsed = time.monotonic() - sent
    assert last["state"] == CANCELLED and elapsed < 1.0, f"CANCELLED after {elapsed:.2f}s"
    assert ("stopped", job["id"], runner) in [(w, j, r) for w, j, r, _ in cluster.lines()]


def test_the_same_request_id_sent_to_both_replicas_at_once_gives_one_job(cluster: Cluster) -> None:
    a, b = cluster.start("A"), cluster.start("B")
    with ThreadPoolExecutor(2) as pool:
        for i in range(10):
            request = {"op": "create", "request_id": f"req-{i}", "params": {"steps": 1}}
            pair = list(pool.map(lambda r, req=request: r.call(**req), (a, b)))
            assert all("record" in p for p in pair), pair  # no INTERNAL, no error at all
            assert pair[0]["record"]["id"] == pair[1]["record"]["id"]
    engine = make_engine(cluster.url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT request_id, count(*) FROM job GROUP BY request_id").all()
    finally:
        engine.dispose()
    assert sorted(rows) == sorted((f"req-{i}", 1) for i in range(10))


def test_a_replica_whose_lease_was_taken_over_writes_nothing_more(cluster: Cluster) -> None:
    cluster.start("A", slots=1)
    cluster.start("B", slots=1)
    # 10 s of work: on a loaded machine the job must still be running when the freeze lands (a 3 s
    # job could end between seeing step 2 and the SIGSTOP, and then nothing is ever taken over).
    job = cluster.replicas[0].create(params={"steps": 200, "step_s": 0.05})
    frozen = cluster.named(cluster.runner(job["id"]))
    survivor = cluster.other(frozen.name)
    _until(lambda: any(e.progress.message == f"{frozen.name}:2" for e in _events(cluster.url, job["id"])),
           30, "no progress from the runner")
    frozen.proc.send_signal(signal.SIGSTOP)  # paused past its lease
    try:
        _until(lambda: survivor.get(job["id"])["attempts"] == 2, 30, "the lease was never taken over")
        _until(lambda: any(e.progress.message == f"{survivor.name}:2" for e in _events(cluster.url, job["id"])),
               30, "the survivor does not run the job")
    finally:
        frozen.proc.send_signal(signal.SIGCONT)  # it wakes up believing it still runs the job
    final = _settled(survivor, job["id"])
    assert final["state"] == SUCCEEDED and final["result"] == survivor.name
    events = _events(cluster.url, job["id"])
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    takeover = next(e.sequence for e in events if e.state == QUEUED and "lease" in e.progress.message)
    late = [e for e in events if e.sequence > takeover and e.progress.message.startswith(f"{frozen.name}:")]
    assert late == []  # fenced: nothing from the frozen replica after the take-over
    lines = [(w, j, r) for w, j, r, _ in cluster.lines()]
    assert ("finish", job["id"], frozen.name) not in lines  # it stopped its work
    _until(lambda: ("stopped", job["id"], frozen.name) in [(w, j, r) for w, j, r, _ in cluster.lines()],
           30, "the frozen replica never stopped the job it lost")
    assert frozen.proc.poll() is None  # alive and well, just no longer the job's runner


def test_database_down_answers_unavailable_then_recovers(cluster: Cluster) -> None:
    port = make_url(cluster.url).port
    assert port is not None
    proxy = TcpProxy(port)
    a = cluster.start("A", url=cluster.url.replace(f":{port}/", f":{proxy.port}/"))
    b = cluster.start("B")  # direct: its jobs must reach A again once A's database is back
    first = a.create(params={"steps": 1})
    assert _settled(a, first["id"])["state"] == SUCCEEDED
    proxy.cut()
    try:
        for _ in range(3):
            answer = a.call(op="create", params={"steps": 1})
            assert answer.get("error", {}).get("code") == "UNAVAILABLE", answer
            assert answer["error"]["reason"] == "DATABASE_UNAVAILABLE"
            assert str(port) not in answer["error"]["message"] and "postgres" not in answer["error"]["message"]
        time.sleep(2 * LEASE)  # the scheduler, lease loop and listener all fail meanwhile
    finally:
        proxy.restore()
    again = _until(lambda: "record" in (r := a.call(op="create", params={"steps": 1})) and r["record"], 30,
                   "A never recovered")
    assert _settled(a, again["id"])["state"] == SUCCEEDED
    log = a.stderr.read_text()
    assert log.count("job_database_unavailable") == 1, log[-3000:]  # one clear line per outage
    assert "job_database_recovered" in log
    assert cluster.url not in log and f":{proxy.port}/" not in log
    # A listens again: a job running on A is cancelled from B within a second.
    b.proc.send_signal(signal.SIGSTOP)  # B must not take it: A is the runner
    try:
        held = a.create(params={"steps": 600, "step_s": 0.05})
        _until(lambda: a.get(held["id"])["state"] == RUNNING, 30, "A does not dispatch")
    finally:
        b.proc.send_signal(signal.SIGCONT)
    sent = time.monotonic()
    b.call(op="cancel", id=held["id"])
    done = _settled(a, held["id"])
    assert done["state"] == CANCELLED and time.monotonic() - sent < 1.0 + 0.5  # + the get poll


def test_queue_positions_are_the_same_on_every_replica(cluster: Cluster) -> None:
    a, b = cluster.start("A", slots=1), cluster.start("B", slots=1)
    busy = [a.create(params={"steps": 2000, "step_s": 0.05}) for _ in range(2)]
    _until(lambda: all(a.get(j["id"])["state"] == RUNNING for j in busy), 30, "both replicas busy")
    queued = [(a, b)[i % 2].create(params={"steps": 1}, priority=p) for i, p in enumerate((0, 3, 0, 7, 3))]
    expected = {queued[3]["id"]: 1, queued[1]["id"]: 2, queued[4]["id"]: 3, queued[0]["id"]: 4, queued[2]["id"]: 5}
    for replica in (a, b):
        assert {j: replica.call(op="position", id=j)["position"] for j in expected} == expected
    # Every queued job's latest QUEUED event announces its current position (whichever replica
    # created the jobs that moved it).
    def announced() -> dict[str, int]:
        out = {}
        for jid in expected:
            evs = [e for e in _events(cluster.url, jid) if e.state == QUEUED]
            out[jid] = evs[-1].progress.queue_position
        return out

    _until(lambda: announced() == expected, 30, f"announced {announced()} != {expected}")
    for j in busy:
        a.call(op="cancel", id=j["id"])
    order = [_until(lambda j=j: a.get(j)["state"] == SUCCEEDED and a.get(j), 60, "queued job never ran")
             for j in expected]
    assert len(order) == 5


def test_concurrent_creates_on_two_replicas_never_pass_max_queued(cluster: Cluster) -> None:
    """The cap is counted and the job inserted under one lock over every replica: creates racing
    on two processes fill the queue to exactly max_queued, never beyond."""
    cap = 5
    a = cluster.start("A", slots=0, max_queued=str(cap))  # slots 0: nothing leaves the queue
    b = cluster.start("B", slots=0, max_queued=str(cap))

    def queued() -> int:
        engine = make_engine(cluster.url)
        try:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql(f"SELECT count(*) FROM job WHERE state = {QUEUED}").scalar_one())
        finally:
            engine.dispose()

    room = cap
    for round_ in range(3):  # an empty queue, then two free places each round
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda i, r=round_: (a, b)[i % 2].call(op="create", params={"round": r}), range(24)))
        errors = {(x["error"]["code"], x["error"]["reason"]) for x in answers if "error" in x}
        assert errors == {("RESOURCE_EXHAUSTED", "QUEUE_FULL")}, errors
        created = [x["record"]["id"] for x in answers if "record" in x]
        assert (queued(), len(created)) == (cap, room), f"round {round_}"
        for jid in created[:2]:
            assert a.call(op="cancel", id=jid)["record"]["state"] == CANCELLED
        room = 2
