"""Storage throughput: gRPC streaming vs direct boto3 against the same SeaweedFS, in one run.

    .venv/bin/python bench/storage_throughput.py [--mb 200] [--repeat 2]

Starts SeaweedFS (free ports), an in-process auth server (to sign in a user) and the storage service
as a subprocess (`python -m services.storage`, configured through its environment) so that its
resident memory can be watched from outside. Prints, side by side:
  - upload:   UploadAsset stream (incl. sha256, ffprobe, commit)  vs  boto3 upload_fileobj
  - download: DownloadAsset stream                                 vs  boto3 download_fileobj
  - presigned PUT with plain HTTP (http.client)                   vs  boto3 put_object
and the service's peak RSS growth during the streaming transfers (goal: ratio >= 0.8, growth < 64 MB;
the streamed upload, issue 20: >= 0.95 quiet, >= 0.85 with --busy: another process spinning a core).
For the uploads it also prints the CPU seconds each process spent (this client, the storage service
with its ffprobe/ffmpeg, SeaweedFS): CPU time is less sensitive to the machine's load than wall time,
and on a 2-core machine the sum is what the two paths compete for.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import io
import os
import secrets
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import grpc
import psutil
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.auth.config import AuthConfig  # noqa: E402
from services.auth.server import build as build_auth  # noqa: E402
from services.kit.config import Secret  # noqa: E402
from services.kit.probe import check  # noqa: E402
from services.kit.server import stop  # noqa: E402
from services.storage.s3server import free_port, start_s3_server  # noqa: E402
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc  # noqa: E402
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc  # noqa: E402

MB = 1_000_000
CHUNK = 1024 * 1024
BUCKET = "viarte-bench"


def wav_bytes(size: int) -> bytes:
    """A valid 16-bit mono WAV of `size` bytes (noise), so the service's checks and ffprobe pass."""
    data_len = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 48_000, 96_000, 2, 16)
    header += b"data" + struct.pack("<I", data_len)
    return header + os.urandom(data_len)


class RssWatcher:
    """Samples VmRSS of a process every few ms in a thread; `peak_growth` is relative to the start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __enter__(self) -> RssWatcher:
        self.base = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_growth(self) -> int:
        return self.peak - self.base


class CpuMeter:
    """CPU seconds (user + system) spent by this process, the storage service (with its reaped
    ffprobe/ffmpeg children) and SeaweedFS between `start()` and `stop()`."""

    NAMES = ("client", "service", "s3")

    def __init__(self, service_pid: int, s3_pid: int) -> None:
        self.procs = (psutil.Process(), psutil.Process(service_pid), psutil.Process(s3_pid))
        self._start: tuple[float, ...] = ()

    def _now(self) -> tuple[float, ...]:
        out = []
        for i, proc in enumerate(self.procs):
            t = proc.cpu_times()
            out.append(t.user + t.system + (t.children_user + t.children_system if i == 1 else 0.0))
        return tuple(out)

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        return {name: b - a for name, a, b in zip(self.NAMES, self._start, self._now(), strict=True)}


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


async def atimed(coro: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    result = await coro
    return time.perf_counter() - t, result


def storage_env(
    port: int, data_dir: Path, s3: Any, auth: AuthConfig, auth_port: int, extra: dict[str, str]
) -> dict[str, str]:
    env = dict(os.environ)
    values = {
        "PORT": port,
        "METRICS_PORT": -1,
        "DATA_DIR": data_dir,
        "LOG_LEVEL": "WARNING",
        "AUTH_ADDRESS": f"127.0.0.1:{auth_port}",
        "INTERNAL_SECRET": auth.internal_secret.reveal(),
        "JWT_ISSUER": auth.jwt_issuer,
        "JWT_AUDIENCE": auth.jwt_audience,
        "S3_ENDPOINT": s3.endpoint,
        "S3_ACCESS_KEY": s3.access_key,
        "S3_SECRET_KEY": s3.secret_key,
        "S3_BUCKET": BUCKET,
        **extra,
    }
    env.update({f"VIARTE_STORAGE_{k}": str(v) for k, v in values.items()})
    return env


async def run(mb: int, repeat: int, extra: dict[str, str], busy: bool = False) -> None:
    size = mb * MB
    tmp = Path(tempfile.mkdtemp(prefix="storage-bench-"))
    print(f"payload: {size / MB:.0f} MB WAV; repeat {repeat}; SeaweedFS + storage service subprocess")
    data = wav_bytes(size)
    digest = hashlib.sha256(data).hexdigest()

    s3 = await start_s3_server(tmp / "s3", 0, "bench-" + secrets.token_hex(4), secrets.token_urlsafe(24))
    auth_config = AuthConfig(
        port=0, metrics_port=-1, data_dir=str(tmp / "auth"), bcrypt_cost=4, log_level="WARNING",
        internal_secret=Secret(secrets.token_urlsafe(16)),
    )
    auth_server, auth_port = await build_auth(auth_config)
    await auth_server.start()
    port = free_port()
    service = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "services.storage"],
        cwd=ROOT, env=storage_env(port, tmp / "storage", s3, auth_config, auth_port, extra),
    )
    try:
        address = f"127.0.0.1:{port}"
        for _ in range(300):
            if await asyncio.to_thread(check, address, "", 0.5):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("storage service did not become healthy")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_port}") as auth_channel:
            registered = await auth_pb2_grpc.AuthServiceStub(auth_channel).Register(
                auth_pb2.RegisterRequest(email=f"bench-{secrets.token_hex(4)}@viarte.test", password="pw-" + secrets.token_hex(8))
            )
        md = (("authorization", f"Bearer {registered.tokens.access_token}"),)
        boto = boto3.client(
            "s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
            region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )
        transfer = TransferConfig()  # boto3 defaults: 8 MB parts, 10 threads
        options = [("grpc.max_receive_message_length", 16 * CHUNK)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = storage_pb2_grpc.StorageServiceStub(channel)

            tails: list[float] = []  # seconds from the last chunk sent to the answer

            async def grpc_upload() -> str:
                sent = 0.0

                async def requests() -> AsyncIterator[storage_pb2.UploadAssetRequest]:
                    nonlocal sent
                    yield storage_pb2.UploadAssetRequest(
                        metadata=storage_pb2.UploadMetadata(name="bench.wav", content_type="audio/wav", sha256=digest)
                    )
                    view = memoryview(data)
                    for i in range(0, size, CHUNK):
                        yield storage_pb2.UploadAssetRequest(chunk=bytes(view[i : i + CHUNK]))
                    sent = time.perf_counter()

                answer = await stub.UploadAsset(requests(), metadata=md, timeout=600)
                tails.append(time.perf_counter() - sent)
                return str(answer.asset.id)

            async def grpc_download(asset_id: str) -> int:
                h, n = hashlib.sha256(), 0
                async for m in stub.DownloadAsset(storage_pb2.DownloadAssetRequest(asset_id=asset_id), metadata=md, timeout=600):
                    n += len(m.chunk)
                    h.update(m.chunk)
                assert n == size and h.hexdigest() == digest
                return n

            def boto_download() -> None:
                h = hashlib.sha256()

                class Sink(io.RawIOBase):
                    def writable(self) -> bool:
                        return True

                    def write(self, b: Any) -> int:
                        h.update(b)
                        return len(b)

                boto.download_fileobj(BUCKET, "bench/direct.wav", Sink(), Config=transfer)

            def put_direct() -> None:
                boto.put_object(Bucket=BUCKET, Key="bench/put.wav", Body=data, ContentType="audio/wav")

            # Warm-up: one multipart-sized upload/download so that lazy imports, botocore's operation
            # models, thread pools and connection pools are in place before memory is watched.
            cold = RssWatcher(service.pid)
            with cold:
                warm = await grpc_upload_small(stub, md)
            async for _ in stub.DownloadAsset(storage_pb2.DownloadAssetRequest(asset_id=warm), metadata=md):
                pass

            results: dict[str, list[float]] = {k: [] for k in ("grpc_up", "boto_up", "grpc_down", "boto_down", "http_put", "boto_put")}
            cpu: dict[str, list[dict[str, float]]] = {"grpc_up": [], "boto_up": []}
            meter = CpuMeter(service.pid, s3.pid or 0)
            growth = {"upload": 0, "download": 0}
            asset_id = ""
            after_round: list[int] = []
            for _ in range(repeat):
                watcher = RssWatcher(service.pid)
                with watcher:
                    meter.start()
                    t, asset_id = await atimed(grpc_upload())
                    cpu["grpc_up"].append(meter.stop())
                results["grpc_up"].append(t)
                growth["upload"] = max(growth["upload"], watcher.peak_growth)
                meter.start()
                results["boto_up"].append(await asyncio.to_thread(
                    timed, lambda: boto.upload_fileobj(io.BytesIO(data), BUCKET, "bench/direct.wav", Config=transfer)
                ))
                cpu["boto_up"].append(meter.stop())
                watcher = RssWatcher(service.pid)
                with watcher:
                    t, _ = await atimed(grpc_download(asset_id))
                results["grpc_down"].append(t)
                growth["download"] = max(growth["download"], watcher.peak_growth)
                results["boto_down"].append(await asyncio.to_thread(timed, boto_download))

                created = await stub.CreateUpload(
                    storage_pb2.CreateUploadRequest(name="p.wav", content_type="audio/wav", size_bytes=size, sha256=digest),
                    metadata=md,
                )
                t, etags = await asyncio.to_thread(presigned_upload, created, data)
                results["http_put"].append(t)
                await stub.CompleteUpload(
                    storage_pb2.CompleteUploadRequest(asset_id=created.asset_id, parts=etags), metadata=md
                )
                results["boto_put"].append(await asyncio.to_thread(timed, put_direct))
                await stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=asset_id), metadata=md)
                await stub.DeleteAsset(storage_pb2.DeleteAssetRequest(asset_id=created.asset_id), metadata=md)
                after_round.append(RssWatcher(service.pid).rss())
        print(f"storage service RSS growth during the first (cold, 24 MiB) upload: {cold.peak_growth / 2**20:.1f} MiB"
              " (one-time: botocore operation models, thread and connection pools)")
        print("storage service RSS after each round: " + ", ".join(f"{r / 2**20:.0f} MiB" for r in after_round)
              + " (flat = bounded, no leak)")
        report(results, growth, size, busy)
        report_cpu(cpu, size)
        print(f"gRPC upload, last chunk sent -> answer (object completed, probed, committed): "
              f"{statistics.median(tails[-repeat:]):.2f} s (median)")
    finally:
        service.terminate()
        service.wait(30)
        await stop(auth_server, grace=0.5)
        await s3.stop()
        # SeaweedFS keeps deleted objects' bytes until a vacuum: ~5 GB per run at the defaults.
        shutil.rmtree(tmp, ignore_errors=True)


def http_put(url: str, body: bytes | memoryview, headers: dict[str, str]) -> str:
    """A presigned PUT with the standard library's HTTP client: no SDK, no signing on our side."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=600)
    try:
        conn.request("PUT", f"{parts.path}?{parts.query}", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"presigned PUT answered {response.status}")
        return str(response.getheader("etag", ""))
    finally:
        conn.close()


def presigned_upload(created: Any, data: bytes) -> tuple[float, list[Any]]:
    """What a browser does: one PUT, or the parts' PUTs four at a time (like browsers' connection
    limit per host). Returns (seconds, CompletedParts)."""
    t = time.perf_counter()
    if created.url:
        http_put(created.url, data, dict(created.required_headers))
        return time.perf_counter() - t, []
    view, offsets, offset = memoryview(data), [], 0
    for part in created.parts:
        offsets.append((part, offset))
        offset += part.size_bytes

    def put(item: tuple[Any, int]) -> Any:
        part, start = item
        etag = http_put(part.url, view[start : start + part.size_bytes], {})
        return storage_pb2.CompletedPart(part_number=part.part_number, etag=etag)

    with ThreadPoolExecutor(4) as pool:
        etags = list(pool.map(put, offsets))
    return time.perf_counter() - t, etags


async def grpc_upload_small(stub: Any, md: Any) -> str:
    small = wav_bytes(24 * 1024 * 1024)

    async def requests() -> AsyncIterator[storage_pb2.UploadAssetRequest]:
        yield storage_pb2.UploadAssetRequest(metadata=storage_pb2.UploadMetadata(name="w.wav", content_type="audio/wav"))
        for i in range(0, len(small), CHUNK):
            yield storage_pb2.UploadAssetRequest(chunk=small[i : i + CHUNK])

    return str((await stub.UploadAsset(requests(), metadata=md)).asset.id)


def report(results: dict[str, list[float]], growth: dict[str, int], size: int, busy: bool = False) -> None:
    def mbps(key: str) -> float:
        return size / MB / statistics.median(results[key]) if results[key] else float("nan")

    rows = [
        ("upload", "gRPC UploadAsset", "grpc_up", "boto3 upload_fileobj", "boto_up"),
        ("download", "gRPC DownloadAsset", "grpc_down", "boto3 download_fileobj", "boto_down"),
        ("presigned PUT", "http.client PUT(s)", "http_put", "boto3 put_object", "boto_put"),
    ]
    print()
    print(f"{'':14} {'ours':24} {'MB/s':>8}   {'baseline':24} {'MB/s':>8}   {'ratio':>6}  goal")
    # Issue 20: the streamed upload >= 0.95 of boto3 on a quiet machine, >= 0.85 with --busy.
    upload_goal = 0.85 if busy else 0.95
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" + (", one core kept busy (--busy)" if busy else ""))
    for label, ours, ok, base, bk in rows:
        ratio = mbps(ok) / mbps(bk)
        bar = upload_goal if ok == "grpc_up" else 0.8
        goal = f">={bar:g} " + ("ok" if ratio >= bar else "MISSED")
        print(f"{label:14} {ours:24} {mbps(ok):8.1f}   {base:24} {mbps(bk):8.1f}   {ratio:6.2f}  {goal}")
    # Each round runs the two uploads back to back: the median of the rounds' own ratios is less
    # moved by load that drifts over the run than the ratio of the two medians above.
    paired = [b / g for g, b in zip(results["grpc_up"], results["boto_up"], strict=True)]
    print(f"{'':14} upload, median of the rounds' own ratios: {statistics.median(paired):.2f}  "
          f"(rounds: {', '.join(f'{r:.2f}' for r in paired)})")
    print()
    for phase, grown in growth.items():
        verdict = "ok" if grown < 64 * 1024 * 1024 else "MISSED"
        print(f"storage service peak RSS growth during {phase} (warm): {grown / 2**20:6.1f} MiB  (goal < 64 MiB: {verdict})")
    print("(times are medians; upload includes the service's sha256, ffprobe and metadata commit)")


def report_cpu(cpu: dict[str, list[dict[str, float]]], size: int) -> None:
    """Median CPU seconds per process for each upload, per 100 MB, side by side."""
    per = 100 * MB / size

    def row(label: str, key: str) -> tuple[str, float]:
        med = {n: statistics.median(m[n] for m in cpu[key]) * per for n in CpuMeter.NAMES}
        total = sum(med.values())
        cells = "  ".join(f"{n} {med[n]:5.2f}" for n in CpuMeter.NAMES)
        print(f"{label:24} {cells}  total {total:5.2f}")
        return label, total

    print()
    print("CPU seconds per 100 MB uploaded (median; client = this process, service incl. ffprobe/ffmpeg):")
    _, ours = row("gRPC UploadAsset", "grpc_up")
    _, base = row("boto3 upload_fileobj", "boto_up")
    print(f"{'':24} CPU ratio ours/boto3: {ours / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process meanwhile")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="extra StorageConfig field for the service, e.g. --set stream_part_bytes=5242880")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    if extra:
        print("service config:", extra)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        asyncio.run(run(args.mb, args.repeat, {k.upper(): v for k, v in extra.items()}, args.busy))
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


if __name__ == "__main__":
    main()
