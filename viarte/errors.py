"""The Viarte SDK's one exception tree.

Every failed call made through the SDK (or decoded by a test with :func:`from_rpc_error`) raises a
:class:`ViarteError`. The class is chosen from the gRPC status code, then refined by the
``google.rpc.ErrorInfo`` reason the service attached (services never make clients parse message
strings). Every instance carries the decoded ``google.rpc.Status`` details:

============================  =======================  ===============================================
class                         gRPC status              notes
============================  =======================  ===============================================
``ViarteError``               any                      base: ``code reason domain message metadata``
                                                       ``field_violations retry_after request_id``
``InvalidArgument``           INVALID_ARGUMENT         ``field_violations`` from ``BadRequest``
``OutOfRange``                OUT_OF_RANGE             subclass of ``InvalidArgument``
``NotFound``                  NOT_FOUND                also another user's resource
``Conflict``                  ALREADY_EXISTS, ABORTED  base of the two below
``AlreadyExists``             ALREADY_EXISTS           e.g. EMAIL_TAKEN
``Aborted``                   ABORTED                  e.g. ETAG_MISMATCH (reload and retry)
``PermissionDenied``          PERMISSION_DENIED        e.g. ACCOUNT_DISABLED
``MissingScope``              PERMISSION_DENIED        MISSING_SCOPE: the API key lacks ``scope``
                                                       (see :mod:`viarte.scopes`)
``Unauthenticated``           UNAUTHENTICATED          e.g. TOKEN_EXPIRED, INVALID_CREDENTIALS
``ResourceExhausted``         RESOURCE_EXHAUSTED       base of the two below
``QuotaExceeded``             RESOURCE_EXHAUSTED       QUOTA_BYTES_EXCEEDED, QUOTA_COUNT_EXCEEDED,
                                                       OBJECT_TOO_LARGE, QUOTA_EXCEEDED (a job over the
                                                       monthly credit budget): retrying will not help
``RateLimited``               RESOURCE_EXHAUSTED       TOO_MANY_ATTEMPTS, RATE_LIMITED, QUEUE_FULL,
                                                       UPSTREAM_RATE_LIMITED, or any ``RetryInfo``:
                                                       wait ``retry_after`` seconds
``FailedPrecondition``        FAILED_PRECONDITION      e.g. NO_FACE_IN_SOURCE, UPLOAD_INCOMPLETE
``Unavailable``               UNAVAILABLE              retried by the SDK with backoff
``DeadlineExceeded``          DEADLINE_EXCEEDED        the per-call deadline passed
``Cancelled``                 CANCELLED                the call (or a job) was cancelled
``Unimplemented``             UNIMPLEMENTED            the server lacks this RPC
``Internal``                  INTERNAL, UNKNOWN,       a server bug; the message is deliberately vague
                              DATA_LOSS
``JobFailed``                 (job state FAILED)       raised by ``wait``/``run`` helpers; ``code``
                                                       and ``reason`` come from the job's ``JobError``
``ClientError``               (none)                   misuse detected by the SDK before any call
============================  =======================  ===============================================

Catch the broad class for the category and test ``err.reason`` (an ``UPPER_SNAKE`` constant listed in
each proto's comments) for the precise case::

    try:
        client.generation.create(params)
    except InvalidArgument as err:
        for v in err.field_violations:
            print(v.field, v.description)
    except RateLimited as err:
        time.sleep(err.retry_after or 1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "ClientError",
    "Conflict",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "JobFailed",
    "MissingScope",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "ViarteError",
    "error_class",
    "from_job_error",
    "from_rpc_error",
    "from_status",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True)
class FieldViolation:
    """One ``google.rpc.BadRequest.FieldViolation``: a request field path and what is wrong with it."""

    field: str
    description: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class ViarteError(Exception):
    """Base of every SDK error. ``code`` is the gRPC status (``None`` for client-side errors)."""

    default_code: ClassVar[grpc.StatusCode | None] = None

    def __init__(
        self,
        message: str = "",
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        retry_after: float | None = None,
        request_id: str = "",
        details: Iterable[Any] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        self.retry_after = retry_after
        self.request_id = request_id
        # The decoded google.rpc detail messages, for anything the attributes above don't cover.
        self.details: tuple[Any, ...] = tuple(details)

    @property
    def code_name(self) -> str:
        return self.code.name if self.code is not None else ""

    def __str__(self) -> str:
        head = " ".join(p for p in (self.code_name, self.reason) if p)
        text = f"{head}: {self.message}" if head else self.message
        if self.field_violations:
            text += " (" + "; ".join(str(v) for v in self.field_violations) + ")"
        if self.retry_after is not None:
            text += f" [retry after {self.retry_after:g}s]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code_name!r}, reason={self.reason!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the CLI's ``--json`` error output)."""
        return {
            "error": type(self).__name__,
            "code": self.code_name,
            "reason": self.reason,
            "domain": self.domain,
            "message": self.message,
            "metadata": self.metadata,
            "field_violations": [
                {"field": v.field, "description": v.description, "reason": v.reason}
                for v in self.field_violations
            ],
            "retry_after": self.retry_after,
            "request_id": self.request_id,
        }


class ClientError(ViarteError):
    """The SDK refused a call before sending it (bad arguments, missing credentials, bad config)."""


class InvalidArgument(ViarteError):
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class OutOfRange(InvalidArgument):
    default_code = grpc.StatusCode.OUT_OF_RANGE


class NotFound(ViarteError):
    default_code = grpc.StatusCode.NOT_FOUND


class Conflict(ViarteError):
    """The resource changed or exists already; re-read it before trying again."""


class AlreadyExists(Conflict):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class Aborted(Conflict):
    default_code = grpc.StatusCode.ABORTED


class PermissionDenied(ViarteError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class MissingScope(PermissionDenied):
    """An API key called an RPC outside its scopes; create a key with ``scope`` to call it."""

    @property
    def scope(self) -> str:
        return str(self.metadata.get("scope", ""))


class Unauthenticated(ViarteError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ViarteError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QuotaExceeded(ResourceExhausted):
    """A hard limit: waiting does not help, freeing space or asking for more does."""


class RateLimited(ResourceExhausted):
    """A soft limit: try again after ``retry_after`` seconds."""


class FailedPrecondition(ViarteError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ViarteError):
    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ViarteError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ViarteError):
    default_code = grpc.StatusCode.CANCELLED


class Unimplemented(ViarteError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ViarteError):
    default_code = grpc.StatusCode.INTERNAL


class JobFailed(ViarteError):
    """A job reached ``JOB_STATE_FAILED``. ``job`` is the final job resource when known."""

    def __init__(self, message: str = "", *, job: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job = job


_BY_CODE: dict[grpc.StatusCode, type[ViarteError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNKNOWN: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
}

# Reasons that refine a status code's class (only applied when the class is a subclass of it).
_BY_REASON: dict[str, type[ViarteError]] = {
    "QUOTA_BYTES_EXCEEDED": QuotaExceeded,
    "QUOTA_COUNT_EXCEEDED": QuotaExceeded,
    "OBJECT_TOO_LARGE": QuotaExceeded,
    "QUOTA_EXCEEDED": QuotaExceeded,
    "TOO_MANY_ATTEMPTS": RateLimited,
    "RATE_LIMITED": RateLimited,
    "UPSTREAM_RATE_LIMITED": RateLimited,
    "QUEUE_FULL": RateLimited,
    "MISSING_SCOPE": MissingScope,
}

_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def error_class(code: grpc.StatusCode | None, reason: str = "", *, has_retry_info: bool = False) -> type[ViarteError]:
    """The exception class for a status code and ErrorInfo reason."""
    base = _BY_CODE.get(code, ViarteError) if code is not None else ViarteError
    refined = _BY_REASON.get(reason)
    if refined is not None and issubclass(refined, base):
        return refined
    if base is ResourceExhausted and has_retry_info:
        return RateLimited
    return base


def _decode_details(status: status_pb2.Status) -> dict[str, Any]:
    out: dict[str, Any] = {"details": [], "violations": [], "reason": "", "domain": "", "metadata": {}}
    for any_msg in status.details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
            error_details_pb2.QuotaFailure,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.ResourceInfo,
            error_details_pb2.DebugInfo,
            error_details_pb2.Help,
            error_details_pb2.LocalizedMessage,
            error_details_pb2.RequestInfo,
        ):
            if any_msg.Is(cls.DESCRIPTOR):
                msg = cls()
                any_msg.Unpack(msg)
                out["details"].append(msg)
                _absorb(out, msg)
                break
    return out


def _absorb(out: dict[str, Any], msg: Any) -> None:
    if isinstance(msg, error_details_pb2.ErrorInfo) and not out["reason"]:
        out["reason"], out["domain"], out["metadata"] = msg.reason, msg.domain, dict(msg.metadata)
    elif isinstance(msg, error_details_pb2.BadRequest):
        out["violations"].extend(
            FieldViolation(v.field, v.description, getattr(v, "reason", "")) for v in msg.field_violations
        )
    elif isinstance(msg, error_details_pb2.RetryInfo):
        out["retry_after"] = msg.retry_delay.seconds + msg.retry_delay.nanos / 1e9
    elif isinstance(msg, error_details_pb2.RequestInfo) and msg.request_id:
        out["request_id"] = msg.request_id


def from_status(
    code: grpc.StatusCode | None,
    message: str,
    status: status_pb2.Status | None = None,
    *,
    request_id: str = "",
) -> ViarteError:
    """Builds the exception for a status code, its message and the optional rich ``google.rpc.Status``."""
    info: dict[str, Any] = _decode_details(status) if status is not None else {}
    retry_after = info.get("retry_after")
    cls = error_class(code, info.get("reason", ""), has_retry_info=retry_after is not None)
    return cls(
        message,
        code=code,
        reason=info.get("reason", ""),
        domain=info.get("domain", ""),
        metadata=info.get("metadata"),
        field_violations=info.get("violations", ()),
        retry_after=retry_after,
        request_id=request_id or info.get("request_id", ""),
        details=info.get("details", ()),
    )


def _trailers(err: Any) -> list[tuple[str, str | bytes]]:
    getter = getattr(err, "trailing_metadata", None)
    if getter is None:
        return []
    try:
        md = getter()
    except Exception:  # a call object that never got trailers
        return []
    return [(k, v) for k, v in (md or ())]


def from_rpc_error(err: grpc.RpcError | BaseException) -> ViarteError:
    """Decodes a ``grpc.RpcError`` / ``grpc.aio.AioRpcError`` (its code, message and the
    ``grpc-status-details-bin`` trailer) into the matching :class:`ViarteError`.

    An existing ``ViarteError`` is returned unchanged; anything else becomes ``Internal``.
    """
    if isinstance(err, ViarteError):
        return err
    code_fn = getattr(err, "code", None)
    if not callable(code_fn):
        return Internal(str(err) or type(err).__name__, code=grpc.StatusCode.UNKNOWN)
    code = code_fn()
    details_fn = getattr(err, "details", None)
    message = (details_fn() if callable(details_fn) else "") or ""
    status: status_pb2.Status | None = None
    request_id = ""
    for key, value in _trailers(err):
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            with contextlib.suppress(DecodeError):
                status = status_pb2.Status.FromString(value)
        elif key == REQUEST_ID_KEY:
            request_id = value.decode() if isinstance(value, bytes) else value
    return from_status(code, message, status, request_id=request_id)


def from_job_error(job_error: Any, *, job: Any = None) -> JobFailed:
    """A :class:`JobFailed` from a ``viarte.type.v1.JobError`` (``code`` is a status code name)."""
    code = getattr(grpc.StatusCode, job_error.code, None) if job_error.code else None
    message = job_error.message or "job failed"
    return JobFailed(
        message,
        job=job,
        code=code,
        reason=job_error.reason,
        metadata=dict(job_error.metadata),
    )


def code_from_number(number: int) -> grpc.StatusCode:
    """``grpc.StatusCode`` for a numeric code (``google.rpc.Status.code``)."""
    return _CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)
