"""Helpers shared by the storage tests: error decoding, a raw S3 client, consistency checks."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import boto3
import grpc
from botocore.config import Config
from google.rpc import error_details_pb2, status_pb2

from services.kit.db import make_engine
from services.storage.store import AssetStore


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a failed call (every storage error carries one)."""
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info
    raise AssertionError(f"no ErrorInfo in {exc!r}")


async def expect_error(call: Any, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == code, (exc.code(), exc.details())
        info = error_info(exc)
        assert info.reason == reason, (info.reason, exc.details())
        if code != grpc.StatusCode.UNAUTHENTICATED and code != grpc.StatusCode.PERMISSION_DENIED:
            assert info.domain == "viarte.storage"
        return exc
    raise AssertionError(f"expected {code} {reason}, the call succeeded")


def s3_client(service: Any) -> Any:
    config = service.config
    return boto3.client(
        "s3",
        endpoint_url=config.s3_endpoint,
        aws_access_key_id=config.s3_access_key,
        aws_secret_access_key=config.s3_secret_key.reveal(),
        region_name=config.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def object_keys(service: Any, prefix: str = "users/") -> list[str]:
    client = s3_client(service)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=service.config.s3_bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def multipart_uploads(service: Any, prefix: str = "users/") -> list[str]:
    r = s3_client(service).list_multipart_uploads(Bucket=service.config.s3_bucket, Prefix=prefix)
    return [u["Key"] for u in r.get("Uploads", [])]


def rows(service: Any) -> list[Any]:
    engine = make_engine(service.config.database())
    try:
        return AssetStore(engine).all_rows()
    finally:
        engine.dispose()


def assert_consistent(service: Any) -> None:
    """Every READY row has its object with the recorded size and sha256, every object under
    users/ belongs to a row (no metadata without object, no orphan), and staging/ holds only
    objects of uploads still PENDING."""
    client = s3_client(service)
    bucket = service.config.s3_bucket
    all_rows = rows(service)
    by_id = {r.id: r for r in all_rows}
    for row in all_rows:
        if row.state != "ready":
            continue
        body = client.get_object(Bucket=bucket, Key=row.object_key)["Body"].read()
        assert len(body) == row.size_bytes and hashlib.sha256(body).hexdigest() == row.sha256, row.id
    for key in object_keys(service):
        asset_id = key.split("/")[2]
        assert asset_id in by_id, f"orphan object {key}"
        assert key.startswith(f"users/{by_id[asset_id].owner_id}/{asset_id}/")
    for key in object_keys(service, "staging/"):
        asset_id = key.split("/")[2]
        assert asset_id in by_id and by_id[asset_id].state == "pending", f"stale staging object {key}"


def wav_of(samples: Any, size: int) -> bytes:
    """A valid WAV header followed by filler up to `size` bytes (sniffs as audio/wav)."""
    head = samples["audio.wav"][1]
    return head + bytes(size - len(head))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def wait_until(predicate: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.3)
    raise AssertionError("condition not reached in time")
