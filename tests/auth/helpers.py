"""Decoding `grpc-status-details-bin` the way clients do (google.rpc.Status details)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    retry_after: float | None
    field_violations: tuple[tuple[str, str], ...]


def failure(exc: grpc.aio.AioRpcError) -> Failure:
    status = rpc_status.from_call(exc)
    assert status is not None, f"no google.rpc.Status details on {exc.code()} {exc.details()}"
    info = error_details_pb2.ErrorInfo()
    retry: float | None = None
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            r = error_details_pb2.RetryInfo()
            detail.Unpack(r)
            retry = r.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            b = error_details_pb2.BadRequest()
            detail.Unpack(b)
            violations.extend((v.field, v.description) for v in b.field_violations)
    return Failure(
        code=exc.code(),
        message=exc.details() or "",
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        retry_after=retry,
        field_violations=tuple(violations),
    )


async def expect_failure(call: object) -> Failure:
    """Awaits an RPC that must fail and returns its decoded status."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return failure(exc)
    raise AssertionError("the RPC succeeded but was expected to fail")
