"""Errors that reach clients as ``google.rpc.Status`` with ``ErrorInfo`` reason codes.

Handlers raise :class:`ServiceError`; the edge interceptor turns it into the gRPC status, with
``ErrorInfo{reason, domain, metadata}``, ``BadRequest`` field violations and ``RetryInfo`` in
``grpc-status-details-bin``. Reasons are UPPER_SNAKE constants listed in each service's proto
comments; clients branch on reasons, never on messages.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from viarte.type.v1 import job_pb2

__all__ = ["IO_FAILED", "FieldViolation", "ServiceError", "Violations", "cap"]

# Errors echo client input (ids, names, paths). Everything a client sees travels in the status
# trailers, which clients refuse beyond ~8 KiB (a confusing error instead of ours), so each
# echoed piece is capped here, the one place every error passes through.
MAX_MESSAGE_CHARS = 300
MAX_VALUE_CHARS = 128
MAX_VIOLATIONS = 10
_ELLIPSIS = "…"
# Every service's reason for `ServiceError.io_failed`.
IO_FAILED = "IO_FAILED"


def cap(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class ServiceError(Exception):
    """One failure, as the client will see it."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: Sequence[FieldViolation] = ()
    retry_after: float | None = None
    # None = the domain of the server that raises it ("viarte.<service>").
    domain: str | None = None

    def __post_init__(self) -> None:
        self.message = cap(self.message, MAX_MESSAGE_CHARS)
        self.metadata = {cap(str(k)): cap(str(v)) for k, v in self.metadata.items()}
        self.field_violations = tuple(
            FieldViolation(cap(v.field), cap(v.description)) for v in self.field_violations[:MAX_VIOLATIONS]
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def invalid_argument(
        cls, reason: str, message: str, *, violations: Sequence[FieldViolation] = (), **kw: object
    ) -> ServiceError:
        return cls(grpc.StatusCode.INVALID_ARGUMENT, reason, message, field_violations=violations, **kw)  # type: ignore[arg-type]

    @classmethod
    def not_found(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.NOT_FOUND, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def already_exists(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.ALREADY_EXISTS, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def permission_denied(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.PERMISSION_DENIED, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def unauthenticated(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.UNAUTHENTICATED, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def resource_exhausted(
        cls, reason: str, message: str, *, retry_after: float | None = None, **kw: object
    ) -> ServiceError:
        return cls(grpc.StatusCode.RESOURCE_EXHAUSTED, reason, message, retry_after=retry_after, **kw)  # type: ignore[arg-type]

    @classmethod
    def failed_precondition(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.FAILED_PRECONDITION, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def aborted(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.ABORTED, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def out_of_range(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.OUT_OF_RANGE, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def unavailable(cls, reason: str, message: str, *, retry_after: float | None = None, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.UNAVAILABLE, reason, message, retry_after=retry_after, **kw)  # type: ignore[arg-type]

    @classmethod
    def deadline_exceeded(cls, reason: str, message: str, **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.DEADLINE_EXCEEDED, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def internal(cls, reason: str = "INTERNAL", message: str = "internal error", **kw: object) -> ServiceError:
        return cls(grpc.StatusCode.INTERNAL, reason, message, **kw)  # type: ignore[arg-type]

    @classmethod
    def io_failed(cls, exc: OSError) -> ServiceError:
        """An unexpected OS call failure of the server's own (a file gone, a full disk) as a job
        sees it: UNAVAILABLE ``IO_FAILED`` with the errno's name and text; the path and the trace
        stay in the log. The job layer retries such a failure like a worker crash."""
        name = errno.errorcode.get(exc.errno or 0, "")
        what = exc.strerror or (os.strerror(exc.errno) if exc.errno else "an unexpected OS error")
        return cls.unavailable(IO_FAILED, f"an I/O operation on the server failed: {what}",
                               metadata={"errno": name} if name else {})

    # -- conversions --------------------------------------------------------------------------
    def to_status(self, default_domain: str) -> grpc.Status:
        """The ``grpc.Status`` (code, message, details trailer) to abort an RPC with."""
        details: list[any_pb2.Any] = []
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=self.domain or default_domain, metadata=dict(self.metadata)
        )
        details.append(_pack(info))
        if self.field_violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.field_violations
                ]
            )
            details.append(_pack(bad))
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        status = status_pb2.Status(code=_CODE_NUMBERS[self.code], message=self.message, details=details)
        return rpc_status.to_status(status)

    def to_job_error(self) -> job_pb2.JobError:
        return job_pb2.JobError(
            code=self.code.name, reason=self.reason, message=self.message, metadata=dict(self.metadata)
        )


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


_CODE_NUMBERS: dict[grpc.StatusCode, int] = {
    code: getattr(code_pb2, code.name) for code in grpc.StatusCode
}


class Violations:
    """Collects ``BadRequest`` field violations and raises them together (diffusers' check_inputs)."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field_path: str, description: str) -> None:
        self._items.append(FieldViolation(field_path, description))

    def check(self, ok: bool, field_path: str, description: str) -> bool:
        if not ok:
            self.add(field_path, description)
        return ok

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[FieldViolation, ...]:
        return tuple(self._items)

    def raise_if_any(self, reason: str = "INVALID_ARGUMENT", message: str | None = None) -> None:
        if self._items:
            summary = message or "; ".join(f"{v.field}: {v.description}" for v in self._items[:3])
            raise ServiceError.invalid_argument(reason, summary, violations=tuple(self._items))
