"""One job-service replica as its own process, for the multi-replica tests.

``python -m tests.kit.jobs.replica --url URL --name A --log FILE [--lease 1.5 --poll 0.5 --slots 2]``
runs a real ``JobService`` + ``HandlerExecutor`` on the database at URL and answers JSON lines on a
loopback TCP port (printed as ``READY <port>`` on stdout): one request per connection, ``create``,
``get``, ``cancel``, ``position`` (one answer line) or ``watch`` (a line per item, then ``end``).

The ``demo`` handler runs ``steps`` steps of ``step_s`` seconds, emitting ``Progress(message=
"<replica>:<step>")``, and appends ``start|finish|stopped <job> <replica> <attempt>`` lines to the
log file (flushed at once: they survive a kill -9 and count executions across processes). Its
result is the replica's name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.kit.config import ServiceConfig
from services.kit.db import make_engine
from services.kit.errors import ServiceError
from services.kit.jobs import HandlerExecutor, JobCancelled, JobConfig, JobRecord, JobService, RunningJob
from services.kit.logs import configure_logging
from services.kit.ports import free_port
from viarte.type.v1 import job_pb2


def _record(rec: JobRecord) -> dict[str, Any]:
    return {"id": rec.id, "state": rec.state, "attempts": rec.attempts, "last_sequence": rec.last_sequence,
            "result": (rec.result or b"").decode(), "cancel_requested": rec.cancel_requested,
            "priority": rec.priority}


def _event(ev: job_pb2.JobEvent) -> dict[str, Any]:
    return {"seq": ev.sequence, "state": ev.state, "message": ev.progress.message,
            "queue_position": ev.progress.queue_position}


class _Handler:
    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log

    def _write(self, what: str, job: RunningJob) -> None:
        with self.log.open("a") as f:
            f.write(f"{what} {job.id} {self.name} {job.attempt}\n")
            f.flush()
            os.fsync(f.fileno())

    async def __call__(self, job: RunningJob) -> bytes:
        params = json.loads(job.parameters or b"{}")
        self._write("start", job)
        try:
            for step in range(1, int(params.get("steps", 3)) + 1):
                job.emit(job_pb2.Progress(stage=job_pb2.STAGE_DENOISING, step=step, message=f"{self.name}:{step}"))
                try:
                    await asyncio.wait_for(job.wait_cancelled(), float(params.get("step_s", 0.01)))
                except TimeoutError:
                    continue
                job.raise_if_cancelled()
        except (JobCancelled, asyncio.CancelledError):
            self._write("stopped", job)
            raise
        self._write("finish", job)
        return self.name.encode()


async def _serve(args: argparse.Namespace) -> None:
    configure_logging(ServiceConfig())  # JSON lines on stderr (stdout carries READY only)
    svc = JobService(
        make_engine(args.url), HandlerExecutor({"demo": _Handler(args.name, Path(args.log))}, slots=args.slots),
        JobConfig(lease_seconds=args.lease, poll_seconds=args.poll, replica_id=args.name, max_queued=args.max_queued),
    )
    await svc.start()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(obj: dict[str, Any]) -> None:
            writer.write(json.dumps(obj).encode() + b"\n")

        try:
            req = json.loads(await reader.readline())
            op = req["op"]
            if op == "create":
                rec = await svc.create(req.get("owner", "alice"), "demo", json.dumps(req.get("params", {})).encode(),
                                       request_id=req.get("request_id", ""), priority=req.get("priority", 0))
                send({"record": _record(rec)})
            elif op == "get":
                send({"record": _record(await svc.get(None, "demo", req["id"]))})
            elif op == "cancel":
                send({"record": _record(await svc.cancel(None, "demo", req["id"]))})
            elif op == "position":
                send({"position": await svc.queue_position(req["id"])})
            elif op == "watch":
                async for item in svc.watch(None, "demo", req["id"], req.get("after", 0)):
                    send({"record": _record(item)} if isinstance(item, JobRecord) else {"event": _event(item)})
                    await writer.drain()
                send({"end": True})
        except ServiceError as err:
            send({"error": {"code": err.code.name, "reason": err.reason, "message": err.message}})
        finally:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lease", type=float, default=1.5)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--max-queued", type=int, default=100)
    asyncio.run(_serve(parser.parse_args()))


# -- the test side ------------------------------------------------------------------------------
def call(port: int, **request: Any) -> dict[str, Any]:
    """One request to a replica; its one answer line."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        line = s.makefile().readline()
    if not line:
        raise ConnectionError("the replica closed the connection")
    return dict(json.loads(line))


def watch(port: int, job_id: str, after: int = 0, timeout: float = 60) -> Iterator[dict[str, Any]]:
    """A Watch on one replica: {"record": ...} first, then {"event": ...} each, until the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(json.dumps({"op": "watch", "id": job_id, "after": after}).encode() + b"\n")
        for line in s.makefile():
            item = json.loads(line)
            if item.get("end"):
                return
            yield item


class TcpProxy:
    """A loopback TCP forwarder in front of PostgreSQL: ``cut()`` drops every connection and refuses
    new ones (the database is unreachable), ``restore()`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            # shutdown() wakes the accept() blocked in _accept (close() alone would leave the
            # socket listening until that call returns, accepting one more connection).
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


if __name__ == "__main__":
    main()
