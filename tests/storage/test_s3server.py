"""The embedded SeaweedFS launcher: loopback only, explicit ports, credentials enforced, restartable."""

from __future__ import annotations

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
