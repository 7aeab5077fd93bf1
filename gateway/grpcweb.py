"""A small gRPC-Web client (``application/grpc-web+proto`` over HTTP/1.1) on httpx.

What the browser editor does, in Python: tests and the gateway bench drive Envoy with it.

Wire format: every message is a frame ``flag(1) length(4, big endian) payload``; flag 0x80 marks the
trailer frame, whose payload is HTTP/1 style ``name: value\\r\\n`` lines (grpc-status, grpc-message,
grpc-status-details-bin). A call that fails before any message may instead carry its status in
the response headers ("trailers-only").
"""

from __future__ import annotations

import base64
import struct
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc
import httpx
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

__all__ = ["GrpcWebClient", "GrpcWebError", "Received", "decode_frames", "encode_frame"]

M = TypeVar("M", bound=Message)

_HEADER = struct.Struct(">BI")
_TRAILER_FLAG = 0x80
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def encode_frame(payload: bytes, *, trailer: bool = False) -> bytes:
    return _HEADER.pack(_TRAILER_FLAG if trailer else 0, len(payload)) + payload


class _FrameReader:
    """Incremental frame decoder: feed bytes as they arrive, take complete frames out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            flag, length = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((flag, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buffer)


def decode_frames(data: bytes) -> list[tuple[int, bytes]]:
    reader = _FrameReader()
    frames = reader.feed(data)
    if reader.pending:
        raise ValueError(f"{reader.pending} trailing bytes after the last frame")
    return frames


def _parse_trailers(payload: bytes) -> dict[str, str]:
    trailers: dict[str, str] = {}
    for line in payload.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            trailers[name.strip().lower()] = value.strip()
    return trailers


class GrpcWebError(Exception):
    """A call that ended with a non-OK grpc-status, with its google.rpc.Status details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        status: status_pb2.Status | None,
        trailers: Mapping[str, str],
    ):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.trailers = dict(trailers)

    def detail(self, kind: type[M]) -> M | None:
        """The first detail of this type (ErrorInfo, BadRequest, RetryInfo, ...) or None."""
        for any_detail in self.status.details if self.status else ():
            if any_detail.Is(kind.DESCRIPTOR):
                message: M = kind()
                any_detail.Unpack(message)
                return message
        return None

    @property
    def reason(self) -> str:
        info = self.detail(error_details_pb2.ErrorInfo)
        return info.reason if info else ""


def _status_error(trailers: Mapping[str, str]) -> GrpcWebError | None:
    raw = trailers.get("grpc-status")
    if raw is None:
        return GrpcWebError(grpc.StatusCode.INTERNAL, "response without grpc-status", None, trailers)
    code = _CODES.get(int(raw), grpc.StatusCode.UNKNOWN)
    if code is grpc.StatusCode.OK:
        return None
    message = urllib.parse.unquote(trailers.get("grpc-message", ""))
    status = None
    if details := trailers.get("grpc-status-details-bin"):
        status = status_pb2.Status.FromString(base64.b64decode(details + "=" * (-len(details) % 4)))
    return GrpcWebError(code, message, status, trailers)


@dataclass(frozen=True)
class Received(Generic[M]):
    """A streamed message with the monotonic time its last byte arrived."""

    message: M
    at: float


@dataclass
class GrpcWebClient:
    """``async with GrpcWebClient(envoy.url) as client: await client.unary(path, request, Reply)``."""

    base_url: str
    metadata: Sequence[tuple[str, str]] = ()
    verify: bool | str = True
    # Connect from this local address (tests: several "clients" on one machine, 127.0.0.x).
    local_address: str = ""
    _http: httpx.AsyncClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        transport = (
            httpx.AsyncHTTPTransport(local_address=self.local_address, verify=self.verify, limits=limits)
            if self.local_address
            else None
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=60, limits=limits, verify=self.verify, transport=transport
        )

    async def __aenter__(self) -> GrpcWebClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, metadata: Sequence[tuple[str, str]], timeout: float | None) -> dict[str, str]:
        headers = {
            "content-type": "application/grpc-web+proto",
            "accept": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "x-user-agent": "viarte-grpcweb-py/1",
        }
        if timeout is not None:
            headers["grpc-timeout"] = f"{max(1, int(timeout * 1000))}m"
        headers.update(dict(self.metadata))
        headers.update(dict(metadata))
        return headers

    async def unary(
        self,
        path: str,
        request: Message,
        reply_type: type[M],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        grpc_timeout: float | None = None,
    ) -> M:
        replies = [
            r.message
            async for r in self.server_stream(
                path, request, reply_type, metadata=metadata, grpc_timeout=grpc_timeout
            )
        ]
        if len(replies) != 1:
            raise GrpcWebError(grpc.StatusCode.INTERNAL, f"unary call got {len(replies)} messages", None, {})
        return replies[0]

    async def server_stream(
        self,
        path: str,
        request: Message,
        reply_type: type[M],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        grpc_timeout: float | None = None,
    ) -> AsyncIterator[Received[M]]:
        """Yields each message as soon as its frame is complete, then checks the trailers."""
        body = encode_frame(request.SerializeToString())
        async with self._http.stream(
            "POST", path, content=body, headers=self._headers(metadata, grpc_timeout)
        ) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:200]
                raise GrpcWebError(
                    _http_status_code(response.status_code),
                    f"HTTP {response.status_code}: {text}",
                    None,
                    dict(response.headers),
                )
            if "grpc-status" in response.headers:  # trailers-only: no body follows
                error = _status_error(response.headers)
                if error is not None:
                    raise error
                return
            reader = _FrameReader()
            trailers: dict[str, str] | None = None
            async for chunk in response.aiter_raw():
                for flag, payload in reader.feed(chunk):
                    if flag & _TRAILER_FLAG:
                        trailers = _parse_trailers(payload)
                    else:
                        yield Received(reply_type.FromString(payload), time.monotonic())
        error = _status_error(trailers if trailers is not None else {})
        if error is not None:
            raise error


def _http_status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC-over-HTTP mapping for replies that never reached a gRPC server."""
    return {
        400: grpc.StatusCode.INTERNAL,
        401: grpc.StatusCode.UNAUTHENTICATED,
        403: grpc.StatusCode.PERMISSION_DENIED,
        404: grpc.StatusCode.UNIMPLEMENTED,
        429: grpc.StatusCode.UNAVAILABLE,
        502: grpc.StatusCode.UNAVAILABLE,
        503: grpc.StatusCode.UNAVAILABLE,
        504: grpc.StatusCode.UNAVAILABLE,
    }.get(http_status, grpc.StatusCode.UNKNOWN)
