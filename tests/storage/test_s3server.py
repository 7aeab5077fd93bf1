"""The embedded SeaweedFS launcher: loopback only, explicit ports, credentials enforced, restartable."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from services.storage.s3server import S3Server, WeedPorts, start_s3_server

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


async def test_weed_http_apis_refuse_direct_writes_and_reads_while_s3_works(tmp_path: Path) -> None:
    """Defence in depth: S3's signatures are not the only lock. The volume server refuses writes
    without a master-issued JWT and the filer refuses reads and writes without a gateway-signed
    JWT, so reaching their ports directly (an SSRF, a local process) cannot touch the objects."""
    async with await start_s3_server(tmp_path / "s3", 0, "AKIATEST", "s3cret-test") as s3:
        good = _client(s3.endpoint, "AKIATEST", "s3cret-test")
        good.create_bucket(Bucket="jwt-test")
        good.put_object(Bucket="jwt-test", Key="a/b.png", Body=b"original", ContentType="image/png")
        p, evil = s3.ports, b"replaced"
        # Volume server: a file id from the master's assign API, then a write without a JWT.
        with urllib.request.urlopen(f"http://127.0.0.1:{p.master}/dir/assign", timeout=10) as r:  # noqa: ASYNC210
            assigned = json.load(r)
        form, headers = _multipart(evil)
        assert _status(f"http://{assigned['url']}/{assigned['fid']}", form, "POST", headers) == 401
        forged = {**headers, "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"}
        assert _status(f"http://{assigned['url']}/{assigned['fid']}", form, "POST", forged) == 401
        # Filer: writing over the bucket's object, creating a new one, reading one, deleting one.
        filer = f"http://127.0.0.1:{p.filer}/buckets/jwt-test/a"
        assert _status(f"{filer}/b.png", evil, "PUT") == 401
        assert _status(f"{filer}/", form, "POST", headers) == 401
        assert _status(f"{filer}/b.png") == 401
        assert _status(f"{filer}/b.png", method="DELETE") == 401
        # S3 keeps working, and nothing above changed the object.
        assert good.get_object(Bucket="jwt-test", Key="a/b.png")["Body"].read() == b"original"
        good.copy_object(Bucket="jwt-test", Key="a/c.png", CopySource={"Bucket": "jwt-test", "Key": "a/b.png"})
        good.put_object(Bucket="jwt-test", Key="a/d.png", Body=b"x" * (3 * 1024 * 1024))
        assert sorted(o["Key"] for o in good.list_objects_v2(Bucket="jwt-test")["Contents"]) == [
            "a/b.png", "a/c.png", "a/d.png"
        ]
        url = good.generate_presigned_url("get_object", Params={"Bucket": "jwt-test", "Key": "a/c.png"}, ExpiresIn=60)
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: ASYNC210
            assert r.read() == b"original"
        # The keys reach weed through its environment, never its command line (visible in `ps`).
        assert not any("jwt" in arg.lower() for arg in s3.command())
