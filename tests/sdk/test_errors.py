"""The exception tree: status code + ErrorInfo reason → class, and every detail decoded."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.sdk.scripted import rich_status
from viarte.errors import (
    Aborted,
    AlreadyExists,
    Conflict,
    Internal,
    InvalidArgument,
    JobFailed,
    MissingScope,
    OutOfRange,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ResourceExhausted,
    Unavailable,
    ViarteError,
    from_job_error,
    from_status,
)
from viarte.type.v1 import job_pb2


def decoded(code: grpc.StatusCode, **kw) -> ViarteError:  # type: ignore[no-untyped-def]
    status = rich_status(code, "msg", **kw)
    trailer = dict(status.trailing_metadata)["grpc-status-details-bin"]
    return from_status(code, "msg", status_pb2.Status.FromString(trailer))


@pytest.mark.parametrize(
    ("code", "reason", "retry_after", "cls"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_BYTES_EXCEEDED", None, QuotaExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "OBJECT_TOO_LARGE", None, QuotaExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS", 30.0, RateLimited),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "SOMETHING_NEW", 2.5, RateLimited),  # any RetryInfo: wait
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "SOMETHING_NEW", None, ResourceExhausted),
        (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN", None, AlreadyExists),
        (grpc.StatusCode.ABORTED, "ETAG_MISMATCH", None, Aborted),
        (grpc.StatusCode.OUT_OF_RANGE, "INVALID_RANGE", None, OutOfRange),
        (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE", None, MissingScope),
        (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_DISABLED", None, PermissionDenied),
        (grpc.StatusCode.UNKNOWN, "", None, Internal),
        # A reason never moves an error to another status family.
        (grpc.StatusCode.UNAVAILABLE, "QUEUE_FULL", None, Unavailable),
    ],
)
def test_class_from_code_and_reason(code, reason, retry_after, cls) -> None:  # type: ignore[no-untyped-def]
    err = decoded(code, reason=reason, retry_after=retry_after)
    assert type(err) is cls
    assert err.reason == reason and err.code is code
    assert err.retry_after == retry_after


def test_details_are_all_kept() -> None:
    err = decoded(grpc.StatusCode.INVALID_ARGUMENT, reason="INVALID_TIMELINE",
                  violations=(("tracks[1].clips[3].source_end_seconds", "past the end of the source"),))  # fmt: skip
    assert isinstance(err, InvalidArgument)
    assert err.domain == "viarte.inference" and err.metadata == {"k": "v"}
    assert [(v.field, v.description) for v in err.field_violations] == [
        ("tracks[1].clips[3].source_end_seconds", "past the end of the source")
    ]
    assert "tracks[1].clips[3].source_end_seconds" in str(err)
    assert err.to_dict()["field_violations"][0]["field"].startswith("tracks[1]")
    assert issubclass(Aborted, Conflict) and issubclass(AlreadyExists, Conflict)


def test_missing_scope_names_the_scope() -> None:
    status = status_pb2.Status(code=7, message="the API key lacks scope 'jobs:write'")
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason="MISSING_SCOPE", domain="viarte.auth", metadata={"scope": "jobs:write"})
    )
    err = from_status(grpc.StatusCode.PERMISSION_DENIED, status.message, status)
    assert isinstance(err, MissingScope) and isinstance(err, PermissionDenied) and err.scope == "jobs:write"


def test_status_without_details_still_maps() -> None:
    err = from_status(grpc.StatusCode.NOT_FOUND, "gone")
    assert err.reason == "" and err.field_violations == () and str(err) == "NOT_FOUND: gone"


def test_job_error_becomes_job_failed() -> None:
    err = from_job_error(job_pb2.JobError(code="RESOURCE_EXHAUSTED", reason="OUT_OF_MEMORY", message="oom",
                                          metadata={"device": "cuda:0"}))  # fmt: skip
    assert isinstance(err, JobFailed) and err.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.reason == "OUT_OF_MEMORY" and err.metadata == {"device": "cuda:0"}
