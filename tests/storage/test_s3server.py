"""The embedded SeaweedFS launcher: loopback only, explicit ports, credentials enforced, restartable."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import jwt as pyjwt
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from services.storage.s3server import S3Server, WeedPorts, jwt_env, start_s3_server

pytestmark = pytest.mark.timeout(180)


def _client(endpoint: str, key: str, secret: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


async def test_credentials_enforced_loopback_ports_and_restart(tmp_path: Path) -> None:
    async with await start_s3_server(tmp_path / "s3", 0, "AKIATEST", "s3cret-test") as s3:
        assert s3.endpoint == f"http://127.0.0.1:{s3.ports.s3}"
        assert len(set(s3.ports.all())) == 8
        for port in s3.ports.all():
            assert _listening("127.0.0.1", port), port
        good = _client(s3.endpoint, "AKIATEST", "s3cret-test")
        good.create_bucket(Bucket="launcher-test")
        good.put_object(Bucket="launcher-test", Key="a/b.txt", Body=b"hello")

        # Anonymous requests are refused, for reads, writes and listings.
        for method, path, body in (
            ("GET", "/launcher-test/a/b.txt", None),
            ("PUT", "/launcher-test/a/c.txt", b"anon"),
            ("GET", "/launcher-test", None),
            ("GET", "/", None),
        ):
            req = urllib.request.Request(s3.endpoint + path, data=body, method=method)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=5)  # noqa: ASYNC210 - a one-shot probe
            assert e.value.code == 403, (method, path)
        # Wrong secret and unknown key are refused.
        for key, secret in (("AKIATEST", "wrong"), ("nobody", "s3cret-test")):
            with pytest.raises(ClientError):
                _client(s3.endpoint, key, secret).get_object(Bucket="launcher-test", Key="a/b.txt")
        assert "a/c.txt" not in [o["Key"] for o in good.list_objects_v2(Bucket="launcher-test")["Contents"]]

        # Stop / start on the same data and ports keeps the objects.
        await s3.stop()
        assert not s3.running
        assert not _listening("127.0.0.1", s3.ports.s3)
        await s3.start()
        assert good.get_object(Bucket="launcher-test", Key="a/b.txt")["Body"].read() == b"hello"
    assert not s3.running


def test_ports_are_explicit_in_the_command(tmp_path: Path) -> None:
    ports = WeedPorts.free()
    server = S3Server(tmp_path, access_key="k", secret_key="s", ports=ports)
    cmd = " ".join(server.command())
    for port in ports.all():
        assert f"={port}" in cmd
    assert "-ip.bind=127.0.0.1" in cmd and "-ip=127.0.0.1" in cmd
    defaults = WeedPorts()
    assert defaults.s3 == 8333
    assert not {8080, 8800, 9333, 8888} & set(defaults.all())
    with pytest.raises(ValueError):
        S3Server(tmp_path, access_key="", secret_key="")


def _status(url: str, data: bytes | None = None, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _multipart(body: bytes) -> tuple[bytes, dict[str, str]]:
    form = b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n' + body + b"\r\n--B--\r\n"
    return form, {"Content-Type": "multipart/form-data; boundary=B"}


def _stored_needle(data_dir: Path, collection: str, body: bytes) -> str:
    """The file id ("<volume>,<needle id><cookie>") of the needle holding `body`, read from the
    volume files (superblock of 8 bytes, then per needle: cookie u32, id u64, size u32, data size
    u32, data; big-endian). Lets the tests aim at a real object without the master's API."""
    for dat in sorted((data_dir / "data").glob(f"{collection}_*.dat")):
        raw, offset = dat.read_bytes(), 8
        while offset + 20 <= len(raw):
            cookie, needle, size = struct.unpack_from(">IQI", raw, offset)
            length = struct.unpack_from(">I", raw, offset + 16)[0] if size else 0
            if raw[offset + 20 : offset + 20 + length] == body:
                return f"{dat.stem.rsplit('_', 1)[1]},{needle:x}{cookie:08x}"
            offset += (16 + size + 4 + 8 + 7) // 8 * 8  # header, body, checksum, timestamp, padding
    raise AssertionError(f"no needle holds the body in {data_dir}")


async def test_weed_http_apis_refuse_direct_writes_and_reads_while_s3_works(tmp_path: Path) -> None:
    """Defence in depth: S3's signatures are not the only lock. The master's and the filer's HTTP
    APIs are off (`-disableHttp`: anonymous `/dir/assign` would hand out volume-write JWTs,
    `/col/delete` would drop the bucket), and the volume server refuses reads and writes without a
    JWT, so reaching weed's ports directly (an SSRF, a local process) cannot touch the objects."""
    async with await start_s3_server(tmp_path / "s3", 0, "AKIATEST", "s3cret-test") as s3:
        good = _client(s3.endpoint, "AKIATEST", "s3cret-test")
        good.create_bucket(Bucket="jwt-test")
        original = b"original " * 200
        good.put_object(Bucket="jwt-test", Key="a/b.png", Body=original, ContentType="image/png")
        p, evil = s3.ports, b"replaced"
        # Master: the admin API answers nobody (the bucket's collection survives a /col/delete).
        master = f"http://127.0.0.1:{p.master}"
        for path in ("/dir/assign", "/col/delete?collection=jwt-test", "/vol/grow?collection=jwt-test&count=2",
                     "/dir/lookup?volumeId=1", "/dir/status", "/vol/vacuum", "/submit"):
            assert _status(master + path) == 404, path
            assert _status(master + path, b"", "POST") == 404, path
        assert _status(master + "/healthz") == 200  # the control: the port answers
        # Volume server: the stored needle, read and overwritten without a JWT, or with a forged one.
        fid = _stored_needle(s3.data_dir, "jwt-test", original)
        needle = f"http://127.0.0.1:{p.volume}/{fid}"
        form, headers = _multipart(evil)
        forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"}
        assert _status(needle) == 401
        assert _status(needle, headers=forged) == 401
        assert _status(needle, form, "POST", headers) == 401
        assert _status(needle, form, "POST", {**headers, **forged}) == 401
        # The control: the same read with a JWT signed by weed's read key gets the object's bytes.
        read_key = jwt_env(s3._jwt_key)["WEED_JWT_SIGNING_READ_KEY"]
        token = pyjwt.encode({"fid": fid, "exp": int(time.time()) + 60}, read_key, algorithm="HS256")
        signed = urllib.request.Request(needle, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(signed, timeout=10) as r:  # noqa: ASYNC210
            assert r.read() == original
        # Filer: its HTTP API is off too (it demanded gateway-signed JWTs before that).
        filer = f"http://127.0.0.1:{p.filer}/buckets/jwt-test/a"
        assert _status(f"{filer}/b.png", evil, "PUT") == 404
        assert _status(f"{filer}/", form, "POST", headers) == 404
        assert _status(f"{filer}/b.png") == 404
        assert _status(f"{filer}/b.png", method="DELETE") == 404
        # S3 keeps working, and nothing above changed the object.
        assert good.get_object(Bucket="jwt-test", Key="a/b.png")["Body"].read() == original
        good.copy_object(Bucket="jwt-test", Key="a/c.png", CopySource={"Bucket": "jwt-test", "Key": "a/b.png"})
        good.put_object(Bucket="jwt-test", Key="a/d.png", Body=b"x" * (3 * 1024 * 1024))
        assert sorted(o["Key"] for o in good.list_objects_v2(Bucket="jwt-test")["Contents"]) == [
            "a/b.png", "a/c.png", "a/d.png"
        ]
        url = good.generate_presigned_url("get_object", Params={"Bucket": "jwt-test", "Key": "a/c.png"}, ExpiresIn=60)
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: ASYNC210
            assert r.read() == original
        # The keys reach weed through its environment, never its command line (visible in `ps`).
        assert not any("jwt" in arg.lower() for arg in s3.command())


async def test_a_small_disk_still_takes_writes_into_many_buckets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk with 9 GB free: SeaweedFS's own volume count (free space over the 1 GB volume size) and
    # its seven volumes per new bucket left room for one written bucket; a CI run failed the fifth
    # bucket's first write with InternalError. Volumes are sparse, so the disk's real size is irrelevant.
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(
        "services.storage.s3server.shutil.disk_usage",
        lambda path: real(path)._replace(free=9 * 1024**3),
    )
    async with await start_s3_server(tmp_path / "s3", 0, "AKIATEST", "s3cret-test") as s3:
        client = _client(s3.endpoint, "AKIATEST", "s3cret-test")
        for i in range(12):
            client.create_bucket(Bucket=f"bucket-{i}")
            client.put_object(Bucket=f"bucket-{i}", Key="first", Body=b"x" * 1000)
        assert [client.get_object(Bucket=f"bucket-{i}", Key="first")["Body"].read() for i in range(12)] == [
            b"x" * 1000
        ] * 12


_ORPHAN_PARENT = """
import asyncio, sys
from services.storage.s3server import start_s3_server

async def main():
    s3 = await start_s3_server(sys.argv[1], 0, "AKIATEST", "s3cret-test")
    print(s3.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_weed_dies_at_once_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A launcher killed outright (a crashed service, an interrupted bench) leaves no SeaweedFS
    behind: weed's own SIGTERM handling waits on its filer and has kept one running for hours."""
    repo = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_PARENT, str(tmp_path / "s3")], cwd=repo,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        weed = psutil.Process(int(parent.stdout.readline()))
        assert weed.is_running() and "weed" in weed.name()
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and weed.is_running() and weed.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    alive = weed.is_running() and weed.status() != psutil.STATUS_ZOMBIE
    if alive:
        weed.kill()
    assert not alive, "weed outlived its launcher by 5 s"
