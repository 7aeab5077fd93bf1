"""The S3 side of a streamed upload (`MultipartWriter`) against the real SeaweedFS: what each part
request carries, and that S3 still refuses a part whose body changed on the way (issue 20)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.storage.objectstore import ObjectStore

pytestmark = pytest.mark.timeout(120)

MIB = 1024 * 1024


@pytest.fixture
def objects(storage_service: Any) -> Iterator[ObjectStore]:
    store = ObjectStore(storage_service.config)
    yield store
    store.close()


def _chunks(data: bytes, size: int = MIB) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_stream_parts_carry_a_checksum_instead_of_a_payload_hash(objects: ObjectStore) -> None:
    """Each part is sent as it is: a CRC32 of the body in a signed header, no second sha256 of the
    bytes for the signature (the service hashes the stream once, for the asset) and no
    `Expect: 100-continue` round trip; the object is byte-exact and the stream's sha256 right."""
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()})

    objects.client.meta.events.register("before-send.s3.UploadPart", record)
    data = uuid.uuid4().bytes * (11 * MIB // 16) + b"tail"
    key = f"internal/tests/{uuid.uuid4().hex}"
    writer = objects.writer(key, "application/octet-stream", 5 * MIB, 2)
    for chunk in _chunks(data):
        await writer.write(chunk)
    await writer.close()
    try:
        assert writer.size == len(data) and writer.sha256 == hashlib.sha256(data).hexdigest()
        assert await objects.read(key) == data
        assert len(sent) == 3  # 5 + 5 + 1 MiB (and the tail)
        for headers in sent:
            assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
            assert headers["x-amz-checksum-crc32"]
            assert "x-amz-checksum-crc32" in headers["authorization"]  # the checksum is signed
            assert "expect" not in headers
    finally:
        await objects.delete(key)


async def test_a_part_changed_on_the_way_is_refused_by_s3(objects: ObjectStore) -> None:
    """With the payload unsigned, the signed CRC32 is what makes S3 refuse a body that is not the
    one the service hashed: the upload fails (BadDigest) instead of storing other bytes."""

    def corrupt(request: Any, **_: Any) -> None:
        body = bytes(request.body)
        request.body = body[:100] + bytes([body[100] ^ 1]) + body[101:]

    objects.client.meta.events.register("before-send.s3.UploadPart", corrupt)
    key = f"internal/tests/{uuid.uuid4().hex}"
    writer = objects.writer(key, "application/octet-stream", 5 * MIB, 1)
    with pytest.raises(ClientError) as caught:
        for chunk in _chunks(bytes(12 * MIB)):
            await writer.write(chunk)
        await writer.close()
    await writer.abort()
    assert caught.value.response["Error"]["Code"] == "BadDigest"
    assert await objects.head(key) is None


async def test_a_short_stream_is_one_put_with_a_checksum_whatever_the_host_aws_config_says(
    storage_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream shorter than one part is stored with one PutObject, which carries the signed CRC32
    too; botocore would drop the checksum under AWS_REQUEST_CHECKSUM_CALCULATION=when_required
    (a common setting for S3-compatible stores), leaving an unsigned body unchecked."""
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    objects = ObjectStore(storage_service.config)
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()})

    objects.client.meta.events.register("before-send.s3.PutObject", record)
    data = uuid.uuid4().bytes * 1000
    key = f"internal/tests/{uuid.uuid4().hex}"
    writer = objects.writer(key, "application/octet-stream", 5 * MIB, 2)
    try:
        await writer.write(data)
        await writer.close()
        assert await objects.read(key) == data
        assert len(sent) == 1
        assert sent[0]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        assert sent[0]["x-amz-checksum-crc32"] and "x-amz-checksum-crc32" in sent[0]["authorization"]
    finally:
        await objects.delete(key)
        objects.close()


async def test_the_last_part_goes_up_beside_the_parts_still_in_flight(objects: ObjectStore) -> None:
    """When the stream ends, its last (short) part is already in memory: it is sent at once, beside
    the full part still in flight, instead of queueing behind it for a free slot (issue 20: the
    time from the stream's end to the answer). Part 2's request is held until part 3's is sent."""
    tail_sent = threading.Event()
    overlapped: list[bool] = []

    def hold(request: Any, **_: Any) -> None:
        if "partNumber=3" in request.url:
            tail_sent.set()
        elif "partNumber=2" in request.url:
            overlapped.append(tail_sent.wait(5))

    objects.client.meta.events.register("before-send.s3.UploadPart", hold)
    data = uuid.uuid4().bytes * (10 * MIB // 16) + b"tail"
    key = f"internal/tests/{uuid.uuid4().hex}"
    writer = objects.writer(key, "application/octet-stream", 5 * MIB, 1)  # one part in flight
    try:
        for chunk in _chunks(data):
            await writer.write(chunk)
        await asyncio.wait_for(writer.close(), 30)
        assert overlapped == [True]
        assert await objects.read(key) == data and writer.sha256 == hashlib.sha256(data).hexdigest()
    finally:
        await objects.delete(key)
