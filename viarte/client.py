"""The Viarte Studio Python SDK: a thin, typed layer over the generated gRPC stubs.

``AsyncClient`` is the asyncio client; ``Client`` is the same client for synchronous code (it runs
the asyncio client on a private loop thread, so both behave identically).

    from viarte import Client, generation_parameters

    with Client("127.0.0.1:8800") as client:          # one address (Envoy) or Endpoints(...)
        client.auth.login("ada@example.com", "correct horse battery")
        image = client.assets.upload("face.png")
        job = client.generation.run(
            generation_parameters(model="tiny-wan", image_asset_id=image.id, prompt="a smile"),
            on_progress=lambda p: print(p.describe()),
        )
        client.assets.download(job.result.video_asset_id, "out.mp4")

Every error is a :class:`viarte.errors.ViarteError`. Unary calls have a deadline (``timeout``,
default 30 s, per call ``timeout=``), are retried on UNAVAILABLE when that is safe, and creates
carry a generated ``request_id`` so a retried create never makes a second job.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar

import httpx
from google.protobuf import field_mask_pb2

from viarte._sync import LoopThread
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.credentials import ApiKeyCredentials, TokenCredentials, Tokens
from viarte.errors import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    JobFailed,
    Unavailable,
    ViarteError,
    from_job_error,
)
from viarte.inference.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    face_swap_pb2,
    face_swap_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
)
from viarte.jobs import JobProgress, JobState
from viarte.render.v1 import project_pb2, project_pb2_grpc, render_pb2, render_pb2_grpc, timeline_pb2
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc
from viarte.transport import _DEFAULT, Endpoints, RetryPolicy, TlsConfig, Transport, call_soon_shielded
from viarte.type.v1 import asset_pb2

__all__ = [
    "AsyncClient",
    "Client",
    "Page",
    "ProgressCallback",
    "face_swap_options",
    "generation_parameters",
]

J = TypeVar("J")
P = TypeVar("P")
T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]
"""``(bytes_done, bytes_total)`` for uploads and downloads."""
JobCallback = Callable[[JobProgress], None]
Source = str | os.PathLike[str] | bytes | IO[bytes]
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str = ""


# ---------------------------------------------------------------------------------------------
# Parameter builders (keyword arguments → proto messages, so scripts need no proto imports)
# ---------------------------------------------------------------------------------------------
_TASKS = {"t2v": generation_pb2.TASK_TEXT_TO_VIDEO, "i2v": generation_pb2.TASK_IMAGE_TO_VIDEO}
_SELECTORS = {
    "all": face_swap_pb2.FACE_SELECTOR_MODE_ALL,
    "index": face_swap_pb2.FACE_SELECTOR_MODE_INDEX,
    "reference": face_swap_pb2.FACE_SELECTOR_MODE_REFERENCE,
}


def face_swap_options(
    source_face_asset_id: str,
    *,
    selector: Literal["all", "index", "reference"] = "all",
    face_index: int = 0,
    reference_face_asset_id: str = "",
    similarity_threshold: float = 0.0,
) -> face_swap_pb2.FaceSwapOptions:
    if selector not in _SELECTORS:
        raise ClientError(f"selector must be one of {sorted(_SELECTORS)}")
    return face_swap_pb2.FaceSwapOptions(
        source_face_asset_id=source_face_asset_id,
        selector=_SELECTORS[selector],
        face_index=face_index,
        reference_face_asset_id=reference_face_asset_id,
        similarity_threshold=similarity_threshold,
    )


def generation_parameters(
    *,
    model: str,
    prompt: str = "",
    task: Literal["t2v", "i2v"] | None = None,
    negative_prompt: str = "",
    image_asset_id: str = "",
    width: int = 0,
    height: int = 0,
    num_frames: int = 0,
    fps: int = 0,
    num_inference_steps: int = 0,
    guidance_scale: float | None = None,
    seed: int | None = None,
    preview_every_n_steps: int = 0,
    face_swap: face_swap_pb2.FaceSwapOptions | None = None,
    svd: Mapping[str, Any] | None = None,
    wan: Mapping[str, Any] | None = None,
) -> generation_pb2.GenerationParameters:
    """``GenerationParameters`` from keywords; ``task`` defaults to i2v when an image is given."""
    chosen = task or ("i2v" if image_asset_id else "t2v")
    if chosen not in _TASKS:
        raise ClientError(f"task must be 't2v' or 'i2v', not {chosen!r}")
    params = generation_pb2.GenerationParameters(
        model=model,
        task=_TASKS[chosen],
        prompt=prompt,
        negative_prompt=negative_prompt,
        image_asset_id=image_asset_id,
        width=width,
        height=height,
        num_frames=num_frames,
        fps=fps,
        num_inference_steps=num_inference_steps,
        preview_every_n_steps=preview_every_n_steps,
    )
    if guidance_scale is not None:
        params.guidance_scale = guidance_scale
    if seed is not None:
        params.seed = seed
    if face_swap is not None:
        params.face_swap.CopyFrom(face_swap)
    if svd is not None:
        params.svd.CopyFrom(generation_pb2.SvdParameters(**svd))
    if wan is not None:
        params.wan.CopyFrom(generation_pb2.WanParameters(**wan))
    return params


# ---------------------------------------------------------------------------------------------
# Async resources
# ---------------------------------------------------------------------------------------------
class _Resource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @property
    def _t(self) -> Transport:
        return self._client.transport


class AsyncAuth(_Resource):
    """Users and sessions (``viarte.auth.v1.AuthService``)."""

    @property
    def _stub(self) -> auth_pb2_grpc.AuthServiceStub:
        return self._t.stub(auth_pb2_grpc.AuthServiceStub, "auth")

    async def register(self, email: str, password: str, display_name: str = "") -> auth_pb2.User:
        """Creates the user and signs this client in as them. Never retried (not idempotent)."""
        req = auth_pb2.RegisterRequest(email=email, password=password, display_name=display_name)
        resp: auth_pb2.RegisterResponse = await self._t.unary(self._stub.Register, req, retry=False, authenticate=False)
        self._client.use_tokens(Tokens.from_proto(resp.tokens))
        return resp.user

    async def login(self, email: str, password: str) -> auth_pb2.User:
        """Signs this client in; the access token is then refreshed before it expires."""
        req = auth_pb2.LoginRequest(email=email, password=password)
        # Not retried: failed attempts count towards the login throttle.
        resp: auth_pb2.LoginResponse = await self._t.unary(self._stub.Login, req, retry=False, authenticate=False)
        self._client.use_tokens(Tokens.from_proto(resp.tokens))
        return resp.user

    async def exchange_refresh_token(self, refresh_token: str) -> Tokens:
        """Rotates a refresh token into a new pair. Never retried: a lost answer must not turn
        into a second use of the rotated token (which revokes the session)."""
        req = auth_pb2.RefreshRequest(refresh_token=refresh_token)
        resp = await self._t.unary(self._stub.Refresh, req, retry=False, authenticate=False)
        return Tokens.from_proto(resp.tokens)

    async def refresh(self) -> Tokens:
        creds = self._client.credentials
        if not isinstance(creds, TokenCredentials):
            raise ClientError("not signed in with a token pair")
        creds.set_tokens(await self.exchange_refresh_token(creds.tokens.refresh_token))
        return creds.tokens

    async def logout(self) -> None:
        await self._t.unary(self._stub.Logout, auth_pb2.LogoutRequest(), retry=False)
        self._client.use_credentials(None)

    async def me(self) -> auth_pb2.GetMeResponse:
        resp: auth_pb2.GetMeResponse = await self._t.unary(self._stub.GetMe, auth_pb2.GetMeRequest(), retry=True)
        return resp

    async def public_keys(self) -> auth_pb2.ListPublicKeysResponse:
        resp: auth_pb2.ListPublicKeysResponse = await self._t.unary(
            self._stub.ListPublicKeys, auth_pb2.ListPublicKeysRequest(), retry=True, authenticate=False
        )
        return resp

    async def list_users(self, *, page_size: int = 50, page_token: str = "") -> Page[auth_pb2.User]:
        resp = await self._t.unary(
            self._stub.ListUsers, auth_pb2.ListUsersRequest(page_size=page_size, page_token=page_token), retry=True
        )
        return Page(list(resp.users), resp.next_page_token)

    async def update_user(
        self, user_id: str, *, role: Literal["user", "admin"] | None = None, disabled: bool = False
    ) -> auth_pb2.User:
        roles = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN, None: auth_pb2.ROLE_UNSPECIFIED}
        req = auth_pb2.UpdateUserRequest(id=user_id, role=roles[role], disabled=disabled)
        resp: auth_pb2.UpdateUserResponse = await self._t.unary(self._stub.UpdateUser, req, retry=True)
        return resp.user


class AsyncApiKeys(_Resource):
    """API keys for partner backends."""

    @property
    def _stub(self) -> auth_pb2_grpc.AuthServiceStub:
        return self._t.stub(auth_pb2_grpc.AuthServiceStub, "auth")

    async def create(
        self, name: str, scopes: Sequence[str] = (), *, ttl_seconds: int = 0
    ) -> tuple[auth_pb2.ApiKey, str]:
        """Returns the key and its secret (shown once). Not retried: there is no request id."""
        req = auth_pb2.CreateApiKeyRequest(name=name, scopes=list(scopes), ttl_seconds=ttl_seconds)
        resp = await self._t.unary(self._stub.CreateApiKey, req, retry=False)
        return resp.api_key, resp.secret

    async def list(self) -> list[auth_pb2.ApiKey]:
        resp = await self._t.unary(self._stub.ListApiKeys, auth_pb2.ListApiKeysRequest(), retry=True)
        return list(resp.api_keys)

    async def revoke(self, key_id: str) -> None:
        await self._t.unary(self._stub.RevokeApiKey, auth_pb2.RevokeApiKeyRequest(id=key_id), retry=True)


def _sha256_and_size(source: bytes | Path | IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(source)
        return h.hexdigest(), len(source)
    size = 0
    with _open(source) as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


class _open:
    """Opens a path (or rewinds a seekable file object) for one pass over the bytes."""

    def __init__(self, source: Path | IO[bytes]) -> None:
        self._source = source
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if isinstance(self._source, Path):
            self._fh = self._source.open("rb")
            return self._fh
        self._source.seek(0)
        return self._source

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


def _chunks(source: bytes | Path | IO[bytes], size: int, chunk: int, progress: ProgressCallback | None) -> Iterator[bytes]:
    done = 0
    if progress:
        progress(0, size)
    if isinstance(source, bytes):
        for i in range(0, len(source), chunk):
            piece = source[i : i + chunk]
            done += len(piece)
            yield piece
            if progress:
                progress(done, size)
        return
    with _open(source) as fh:
        while piece := fh.read(chunk):
            done += len(piece)
            yield piece
            if progress:
                progress(done, size)


class AsyncAssets(_Resource):
    """Images, videos and audio (``viarte.storage.v1.StorageService``)."""

    @property
    def _stub(self) -> storage_pb2_grpc.StorageServiceStub:
        return self._t.stub(storage_pb2_grpc.StorageServiceStub, "storage")

    async def upload(
        self,
        source: Source,
        *,
        name: str | None = None,
        content_type: str | None = None,
        labels: Mapping[str, str] | None = None,
        method: Literal["stream", "presigned"] = "stream",
        progress: ProgressCallback | None = None,
        request_id: str | None = None,
        chunk_size: int = CHUNK,
        timeout: float | None = 600.0,  # noqa: ASYNC109 - a gRPC deadline
    ) -> storage_pb2.Asset:
        """Uploads a file, bytes or a seekable binary file object; returns the READY asset.

        ``stream`` sends the bytes through the storage service (``UploadAsset``); ``presigned``
        PUTs them straight to S3 (``CreateUpload`` → HTTP PUT → ``CompleteUpload``), as browsers do.
        Both send the size and sha256, which the service verifies, and a ``request_id`` so a retry
        after a dropped connection returns the same asset.
        """
        data, name = self._normalise(source, name)
        content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        sha256, size = await asyncio.to_thread(_sha256_and_size, data)
        request_id = request_id or uuid.uuid4().hex
        if method == "presigned":
            return await self._upload_presigned(data, name, content_type, size, sha256, request_id, progress, timeout)
        if method != "stream":
            raise ClientError("method must be 'stream' or 'presigned'")
        meta = storage_pb2.UploadMetadata(
            name=name, content_type=content_type, size_bytes=size, sha256=sha256, request_id=request_id,
            labels=dict(labels or {}),
        )

        def requests() -> Iterator[storage_pb2.UploadAssetRequest]:
            yield storage_pb2.UploadAssetRequest(metadata=meta)
            for piece in _chunks(data, size, chunk_size, progress):
                yield storage_pb2.UploadAssetRequest(chunk=piece)

        resp: storage_pb2.UploadAssetResponse = await self._t.stream_unary(
            self._stub.UploadAsset, requests, retry=True, timeout=timeout
        )
        return resp.asset

    @staticmethod
    def _normalise(source: Source, name: str | None) -> tuple[bytes | Path | IO[bytes], str]:
        if isinstance(source, bytes):
            if not name:
                raise ClientError("name= is required when uploading bytes")
            return source, name
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise ClientError(f"no such file: {path}")
            return path, name or path.name
        if not source.seekable():
            raise ClientError("file objects must be seekable (the SDK hashes them before sending)")
        return source, name or Path(getattr(source, "name", "upload.bin")).name

    async def _upload_presigned(
        self, data: bytes | Path | IO[bytes], name: str, content_type: str, size: int, sha256: str,
        request_id: str, progress: ProgressCallback | None, timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> storage_pb2.Asset:
        req = storage_pb2.CreateUploadRequest(
            name=name, content_type=content_type, size_bytes=size, sha256=sha256, request_id=request_id
        )
        up = await self._t.unary(self._stub.CreateUpload, req, retry=True)
        headers = {"content-type": content_type, **dict(up.required_headers)}
        parts: list[storage_pb2.CompletedPart] = []
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            if up.url:
                body = await asyncio.to_thread(_read_all, data)
                await _put(http, up.url, body, headers, progress, 0, size)
            else:
                body = await asyncio.to_thread(_read_all, data)
                offset = 0
                for part in sorted(up.parts, key=lambda p: p.part_number):
                    piece = body[offset : offset + part.size_bytes]
                    etag = await _put(http, part.url, piece, headers, progress, offset, size)
                    parts.append(storage_pb2.CompletedPart(part_number=part.part_number, etag=etag))
                    offset += part.size_bytes
        done: storage_pb2.CompleteUploadResponse = await self._t.unary(
            self._stub.CompleteUpload, storage_pb2.CompleteUploadRequest(asset_id=up.asset_id, parts=parts), retry=True
        )
        return done.asset

    async def get(self, asset_id: str, *, timeout: Any = _DEFAULT) -> storage_pb2.Asset:  # noqa: ASYNC109 - a gRPC deadline
        req = storage_pb2.GetAssetRequest(asset_id=asset_id)
        resp: storage_pb2.GetAssetResponse = await self._t.unary(self._stub.GetAsset, req, retry=True, timeout=timeout)
        return resp.asset

    async def list(
        self, *, kind: Literal["image", "video", "audio"] | None = None, page_size: int = 50, page_token: str = ""
    ) -> Page[storage_pb2.Asset]:
        kinds = {
            None: asset_pb2.ASSET_KIND_UNSPECIFIED,
            "image": asset_pb2.ASSET_KIND_IMAGE,
            "video": asset_pb2.ASSET_KIND_VIDEO,
            "audio": asset_pb2.ASSET_KIND_AUDIO,
        }
        req = storage_pb2.ListAssetsRequest(page_size=page_size, page_token=page_token, kind=kinds[kind])
        resp = await self._t.unary(self._stub.ListAssets, req, retry=True)
        return Page(list(resp.assets), resp.next_page_token)

    async def list_all(self, *, kind: Literal["image", "video", "audio"] | None = None) -> AsyncIterator[storage_pb2.Asset]:
        token = ""
        while True:
            page = await self.list(kind=kind, page_token=token)
            for item in page.items:
                yield item
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def delete(self, asset_id: str) -> None:
        await self._t.unary(self._stub.DeleteAsset, storage_pb2.DeleteAssetRequest(asset_id=asset_id), retry=True)

    async def url(
        self, asset_id: str, *, expire_seconds: int = 0, attachment: bool = False, thumbnail: bool = False
    ) -> str:
        req = storage_pb2.GetDownloadUrlRequest(
            asset_id=asset_id, expire_seconds=expire_seconds, attachment=attachment, thumbnail=thumbnail
        )
        resp: storage_pb2.GetDownloadUrlResponse = await self._t.unary(self._stub.GetDownloadUrl, req, retry=True)
        return resp.url

    async def stream(
        self, asset_id: str, *, thumbnail: bool = False, offset: int = 0, max_resumes: int = 5,
        progress: ProgressCallback | None = None,
    ) -> AsyncIterator[bytes]:
        """The asset's bytes in chunks. A stream dropped midway resumes from the byte it reached."""
        total, resumes = 0, 0
        while True:
            req = storage_pb2.DownloadAssetRequest(asset_id=asset_id, offset=offset, thumbnail=thumbnail)
            try:
                async for msg in self._t.unary_stream(self._stub.DownloadAsset, req):
                    if msg.HasField("asset") and not total:
                        total = msg.asset.size_bytes if not thumbnail else 0
                    if msg.chunk:
                        offset += len(msg.chunk)
                        yield msg.chunk
                        if progress:
                            progress(offset, total or offset)
                return
            except Unavailable:
                resumes += 1
                if resumes > max_resumes:
                    raise
                await asyncio.sleep(self._t.retry.delay(resumes))

    async def read(self, asset_id: str, *, thumbnail: bool = False) -> bytes:
        return b"".join([chunk async for chunk in self.stream(asset_id, thumbnail=thumbnail)])

    async def download(
        self,
        asset_id: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        thumbnail: bool = False,
        progress: ProgressCallback | None = None,
        method: Literal["stream", "url"] = "stream",
    ) -> Path:
        """Writes the asset to ``dest`` (a file, or a folder to keep the asset's name; default the
        current folder) through a temporary file, so a failed download leaves nothing behind."""
        target = Path(dest) if dest is not None else Path.cwd()
        if target.is_dir():
            asset = await self.get(asset_id)
            target = target / (Path(asset.name).name if not thumbnail else f"{Path(asset.name).stem}.jpg")
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with partial.open("wb") as fh:
                if method == "url":
                    await self._download_url(asset_id, thumbnail, fh, progress)
                else:
                    async for chunk in self.stream(asset_id, thumbnail=thumbnail, progress=progress):
                        await asyncio.to_thread(fh.write, chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    async def _download_url(
        self, asset_id: str, thumbnail: bool, fh: IO[bytes], progress: ProgressCallback | None
    ) -> None:
        url = await self.url(asset_id, thumbnail=thumbnail)
        async with httpx.AsyncClient(timeout=600, trust_env=False) as http, http.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise Unavailable(f"download URL answered HTTP {resp.status_code}", reason="S3_UNAVAILABLE")
            total = int(resp.headers.get("content-length", 0))
            done = 0
            async for chunk in resp.aiter_bytes(CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total or done)


def _read_all(data: bytes | Path | IO[bytes]) -> bytes:
    if isinstance(data, bytes):
        return data
    with _open(data) as fh:
        return fh.read()


async def _put(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], progress: ProgressCallback | None,
    base: int, total: int,
) -> str:
    async def content() -> AsyncIterator[bytes]:
        for i in range(0, len(body), CHUNK):
            yield body[i : i + CHUNK]
            if progress:
                progress(base + min(i + CHUNK, len(body)), total)

    headers = {**headers, "content-length": str(len(body))}
    try:
        resp = await http.put(url, content=content(), headers=headers)
    except httpx.TransportError as exc:
        raise Unavailable(f"upload PUT failed: {exc}", reason="S3_UNAVAILABLE") from exc
    if resp.status_code >= 300:
        raise Unavailable(f"upload PUT answered HTTP {resp.status_code}: {resp.text[:200]}", reason="S3_UNAVAILABLE")
    return str(resp.headers.get("etag", "")).strip('"')


@dataclass(frozen=True)
class _JobSpec:
    kind: str  # "generation", "face_swap", "render", "upscale"
    service: str  # endpoint: "inference" or "render"
    stub: Any
    pb: Any
    name: str  # the RPC infix: CreateGenerationJob, ...


class AsyncJobs(_Resource, Generic[J, P]):
    """One job kind: create, get, list, cancel, watch (with resume), wait, run."""

    def __init__(self, client: AsyncClient, spec: _JobSpec) -> None:
        super().__init__(client)
        self._spec = spec

    @property
    def kind(self) -> str:
        return self._spec.kind

    def _rpc(self, verb: str) -> Any:
        stub = self._t.stub(self._spec.stub, self._spec.service)
        return getattr(stub, f"{verb}{self._spec.name}Job" + ("s" if verb == "List" else ""))

    def _req(self, verb: str, **fields: Any) -> Any:
        suffix = "s" if verb == "List" else ""
        return getattr(self._spec.pb, f"{verb}{self._spec.name}Job{suffix}Request")(**fields)

    async def create(
        self, parameters: P, *, request_id: str | None = None, priority: int = 0, timeout: Any = _DEFAULT  # noqa: ASYNC109 - a gRPC deadline
    ) -> J:
        """Queues a job. ``request_id`` (generated when omitted) makes retries and repeats safe: the
        same id returns the existing job."""
        req = self._req("Create", parameters=parameters, request_id=request_id or uuid.uuid4().hex, priority=priority)
        # Retried only because the request carries its request_id.
        resp = await self._t.unary(self._rpc("Create"), req, retry=bool(req.request_id), timeout=timeout)
        return resp.job  # type: ignore[no-any-return]

    async def get(self, job_id: str, *, timeout: Any = _DEFAULT) -> J:  # noqa: ASYNC109 - a gRPC deadline
        return (await self._t.unary(self._rpc("Get"), self._req("Get", id=job_id), retry=True, timeout=timeout)).job  # type: ignore[no-any-return]

    async def list(
        self, *, state: JobState | str | None = None, page_size: int = 50, page_token: str = ""
    ) -> Page[J]:
        st = JobState.parse(state) if state is not None else JobState.UNSPECIFIED
        req = self._req("List", page_size=page_size, page_token=page_token, state=int(st))
        resp = await self._t.unary(self._rpc("List"), req, retry=True)
        return Page(list(resp.jobs), resp.next_page_token)

    async def list_all(self, *, state: JobState | str | None = None) -> AsyncIterator[J]:
        token = ""
        while True:
            page = await self.list(state=state, page_token=token)
            for job in page.items:
                yield job
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def cancel(self, job_id: str) -> J:
        """Cancels a queued or running job (a finished job is returned unchanged)."""
        return (await self._t.unary(self._rpc("Cancel"), self._req("Cancel", id=job_id), retry=True)).job  # type: ignore[no-any-return]

    async def watch(
        self, job_id: str, *, after_sequence: int = 0, resume: bool = True, max_reconnects: int = 10
    ) -> AsyncIterator[JobProgress]:
        """The job's snapshot, then each event after ``after_sequence``, until a terminal state.

        When the stream drops (UNAVAILABLE, or the server closes it early), the SDK reconnects
        with ``after_sequence`` = the last sequence seen, so nothing is missed or repeated. The
        terminal update carries the final job (``update.job.result``).
        """
        last, reconnects, first = after_sequence, 0, True
        while True:
            req = self._req("Watch", id=job_id, after_sequence=last)
            progressed = False
            try:
                async for msg in self._t.unary_stream(self._rpc("Watch"), req):
                    if msg.HasField("job"):
                        snap = JobProgress.from_job(self.kind, msg.job)
                        if snap.terminal:
                            yield snap  # already finished: the snapshot carries the result
                            return
                        if first:
                            first = False
                            yield snap
                        continue
                    if msg.event.sequence <= last:
                        continue  # a replay we already handed out
                    last, progressed = msg.event.sequence, True
                    update = JobProgress.from_event(self.kind, job_id, msg.event)
                    if update.terminal:
                        yield update.with_job(await self.get(job_id))
                        return
                    yield update
            except Unavailable as err:
                if not resume:
                    raise
                dropped: ViarteError | None = err
            else:
                if not resume:
                    return
                dropped = None
            reconnects = 0 if progressed else reconnects + 1
            if reconnects > max_reconnects:
                raise dropped or Unavailable("watch stream kept closing before the job finished")
            await asyncio.sleep(self._t.retry.delay(max(reconnects, 1)))

    async def wait(
        self,
        job_id: str,
        *,
        on_progress: JobCallback | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
        cancel_on_interrupt: bool = False,
    ) -> J:
        """Watches until the job ends; returns it on success, raises ``JobFailed``/``Cancelled``.
        ``timeout`` bounds the wait (``DeadlineExceeded``); the job keeps running unless
        ``cancel_on_interrupt``, which also cancels it when this task is cancelled."""
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(job_id, on_progress)
        except TimeoutError:
            if cancel_on_interrupt:
                await call_soon_shielded(lambda: self.cancel(job_id))
            raise DeadlineExceeded(f"job {job_id} did not finish within {timeout}s", reason="WAIT_TIMEOUT") from None
        except (asyncio.CancelledError, KeyboardInterrupt):
            if cancel_on_interrupt:
                await call_soon_shielded(lambda: self.cancel(job_id))
            raise

    async def _follow(self, job_id: str, on_progress: JobCallback | None) -> J:
        async for update in self.watch(job_id):
            if on_progress is not None:
                on_progress(update)
            if update.terminal:
                return _final(update)  # type: ignore[no-any-return]
        raise Unavailable(f"watch of job {job_id} ended without a terminal state")

    async def submit(
        self, parameters: P, *, request_id: str | None = None, priority: int = 0
    ) -> AsyncIterator[JobProgress]:
        """Creates the job and yields its progress; the last update is terminal and carries the
        final job. Cancelling the consuming task (or Ctrl-C in the sync client) cancels the job."""
        job = await self.create(parameters, request_id=request_id, priority=priority)
        job_id = job.id  # type: ignore[attr-defined]
        finished = False
        try:
            async for update in self.watch(job_id):
                finished = update.terminal
                yield update
        except (asyncio.CancelledError, KeyboardInterrupt):
            await call_soon_shielded(lambda: self.cancel(job_id))
            raise

        if not finished:
            raise Unavailable(f"watch of job {job_id} ended without a terminal state")

    async def run(
        self,
        parameters: P,
        *,
        on_progress: JobCallback | None = None,
        request_id: str | None = None,
        priority: int = 0,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> J:
        """Create and wait: returns the succeeded job, raises ``JobFailed``/``Cancelled``.
        Cancelling the task (or Ctrl-C) or a ``timeout`` cancels the job on the server."""
        job = await self.create(parameters, request_id=request_id, priority=priority)
        return await self.wait(job.id, on_progress=on_progress, timeout=timeout, cancel_on_interrupt=True)  # type: ignore[attr-defined]


def _final(update: JobProgress) -> Any:
    job = update.job
    if update.state is JobState.SUCCEEDED:
        return job
    if update.state is JobState.FAILED:
        err = job.status.error if job is not None and job.status.HasField("error") else update.error
        if err is None:
            raise JobFailed(f"job {update.job_id} failed", job=job)
        raise from_job_error(err, job=job)
    raise Cancelled(f"job {update.job_id} was cancelled", reason="JOB_CANCELLED")


class AsyncGeneration(AsyncJobs[generation_pb2.GenerationJob, generation_pb2.GenerationParameters]):
    """Text/image-to-video generation jobs (``viarte.inference.v1.GenerationService``)."""

    async def list_models(self) -> list[generation_pb2.Model]:
        stub = self._t.stub(generation_pb2_grpc.GenerationServiceStub, "inference")
        return list((await self._t.unary(stub.ListModels, generation_pb2.ListModelsRequest(), retry=True)).models)


class AsyncRender(AsyncJobs[render_pb2.RenderJob, render_pb2.RenderParameters]):
    """Timeline render jobs and scrubber frames (``viarte.render.v1.RenderService``)."""

    async def frame(self, timeline: timeline_pb2.Timeline, time_seconds: float, *, max_width: int = 0) -> render_pb2.RenderFrameResponse:
        stub = self._t.stub(render_pb2_grpc.RenderServiceStub, "render")
        req = render_pb2.RenderFrameRequest(timeline=timeline, time_seconds=time_seconds, max_width=max_width)
        resp: render_pb2.RenderFrameResponse = await self._t.unary(stub.RenderFrame, req, retry=True)
        return resp


class AsyncProjects(_Resource):
    """Saved editor projects with etag concurrency (``viarte.render.v1.ProjectService``)."""

    @property
    def _stub(self) -> project_pb2_grpc.ProjectServiceStub:
        return self._t.stub(project_pb2_grpc.ProjectServiceStub, "render")

    async def create(
        self, title: str, timeline: timeline_pb2.Timeline | None = None, *, request_id: str | None = None
    ) -> project_pb2.Project:
        project = project_pb2.Project(title=title, timeline=timeline or timeline_pb2.Timeline())
        req = project_pb2.CreateProjectRequest(project=project, request_id=request_id or uuid.uuid4().hex)
        resp: project_pb2.CreateProjectResponse = await self._t.unary(self._stub.CreateProject, req, retry=True)
        return resp.project

    async def get(self, project_id: str) -> project_pb2.Project:
        req = project_pb2.GetProjectRequest(id=project_id)
        resp: project_pb2.GetProjectResponse = await self._t.unary(self._stub.GetProject, req, retry=True)
        return resp.project

    async def list(self, *, page_size: int = 50, page_token: str = "") -> Page[project_pb2.Project]:
        req = project_pb2.ListProjectsRequest(page_size=page_size, page_token=page_token)
        resp = await self._t.unary(self._stub.ListProjects, req, retry=True)
        return Page(list(resp.projects), resp.next_page_token)

    async def update(self, project: project_pb2.Project, *, fields: Iterable[str] = ()) -> project_pb2.Project:
        """Saves ``project`` (its ``etag`` must be current, else ``Aborted``/ETAG_MISMATCH).
        Retrying is safe: a replay of an applied update fails the etag check instead of applying twice."""
        req = project_pb2.UpdateProjectRequest(project=project, update_mask=field_mask_pb2.FieldMask(paths=list(fields)))
        resp: project_pb2.UpdateProjectResponse = await self._t.unary(self._stub.UpdateProject, req, retry=True)
        return resp.project

    async def delete(self, project_id: str, *, etag: str = "") -> None:
        await self._t.unary(self._stub.DeleteProject, project_pb2.DeleteProjectRequest(id=project_id, etag=etag), retry=True)


class AsyncAssistant(_Resource):
    """Magic Prompt and the editor assistant (``viarte.inference.v1.AssistantService``)."""

    @property
    def _stub(self) -> assistant_pb2_grpc.AssistantServiceStub:
        return self._t.stub(assistant_pb2_grpc.AssistantServiceStub, "inference")

    async def enhance_prompt(
        self, idea: str, *, family: int = 0, max_words: int = 0
    ) -> assistant_pb2.EnhancePromptResponse:
        req = assistant_pb2.EnhancePromptRequest(idea=idea, family=family, max_words=max_words)  # type: ignore[arg-type]
        resp: assistant_pb2.EnhancePromptResponse = await self._t.unary(
            self._stub.EnhancePrompt, req, retry=True, timeout=120.0
        )
        return resp

    async def status(self) -> assistant_pb2.GetAssistantStatusResponse:
        req = assistant_pb2.GetAssistantStatusRequest()
        resp: assistant_pb2.GetAssistantStatusResponse = await self._t.unary(self._stub.GetAssistantStatus, req, retry=True)
        return resp

    async def chat(
        self, messages: Sequence[tuple[str, str]], *, project: assistant_pb2.ProjectContext | None = None
    ) -> AsyncIterator[assistant_pb2.ChatResponse]:
        """Streams the answer; ``messages`` are ``(role, text)`` with role "user" or "assistant"."""
        roles = {"user": assistant_pb2.CHAT_ROLE_USER, "assistant": assistant_pb2.CHAT_ROLE_ASSISTANT}
        req = assistant_pb2.ChatRequest(
            messages=[assistant_pb2.ChatMessage(role=roles[r], content=c) for r, c in messages], project=project
        )
        async for msg in self._t.unary_stream(self._stub.Chat, req, timeout=300.0):
            yield msg


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------
_GENERATION = _JobSpec("generation", "inference", generation_pb2_grpc.GenerationServiceStub, generation_pb2, "Generation")
_FACE_SWAP = _JobSpec("face_swap", "inference", face_swap_pb2_grpc.FaceSwapServiceStub, face_swap_pb2, "FaceSwap")
_RENDER = _JobSpec("render", "render", render_pb2_grpc.RenderServiceStub, render_pb2, "Render")
_UPSCALE = _JobSpec("upscale", "render", render_pb2_grpc.UpscaleServiceStub, render_pb2, "Upscale")


def _endpoints(endpoints: Endpoints | str | Mapping[str, str] | None) -> Endpoints:
    if endpoints is None:
        return Endpoints()
    if isinstance(endpoints, str):
        return Endpoints.single(endpoints)
    if isinstance(endpoints, Endpoints):
        return endpoints
    return Endpoints.from_mapping(endpoints)


class AsyncClient:
    """The asyncio client. Use as ``async with AsyncClient(...) as client:`` or call ``close()``."""

    def __init__(
        self,
        endpoints: Endpoints | str | Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        tokens: Tokens | None = None,
        tls: TlsConfig | bool | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if api_key and tokens:
            raise ClientError("pass api_key or tokens, not both")
        self.transport = Transport(
            endpoints=_endpoints(endpoints),
            tls=TlsConfig() if tls is True else (tls or None),
            retry=retry or RetryPolicy(),
            timeout=timeout,
            channel_options=channel_options,
        )
        self._on_tokens = on_tokens
        self.auth = AsyncAuth(self)
        self.api_keys = AsyncApiKeys(self)
        self.assets = AsyncAssets(self)
        self.generation = AsyncGeneration(self, _GENERATION)
        self.face_swap: AsyncJobs[face_swap_pb2.FaceSwapJob, face_swap_pb2.FaceSwapParameters] = AsyncJobs(self, _FACE_SWAP)
        self.render = AsyncRender(self, _RENDER)
        self.upscale: AsyncJobs[render_pb2.UpscaleJob, render_pb2.UpscaleParameters] = AsyncJobs(self, _UPSCALE)
        self.projects = AsyncProjects(self)
        self.assistant = AsyncAssistant(self)
        if api_key:
            self.use_credentials(ApiKeyCredentials(api_key))
        elif tokens:
            self.use_tokens(tokens, notify=False)

    @property
    def endpoints(self) -> Endpoints:
        return self.transport.endpoints

    @property
    def credentials(self) -> Any:
        return self.transport.credentials

    def use_credentials(self, credentials: Any) -> None:
        self.transport.credentials = credentials

    def use_tokens(self, tokens: Tokens, *, notify: bool = True) -> None:
        creds = TokenCredentials(tokens, refresher=self.auth.exchange_refresh_token, on_change=self._on_tokens)
        self.use_credentials(creds)
        if notify and self._on_tokens is not None:
            self._on_tokens(tokens)

    def jobs(self, kind: str) -> AsyncJobs[Any, Any]:
        """The job resource for ``generation``, ``face_swap``, ``render`` or ``upscale``."""
        resources: dict[str, AsyncJobs[Any, Any]] = {
            "generation": self.generation, "face_swap": self.face_swap, "render": self.render, "upscale": self.upscale,
        }
        if kind not in resources:
            raise ClientError(f"unknown job kind {kind!r}; one of {sorted(resources)}")
        return resources[kind]

    async def wait_ready(self, services: Iterable[str] = ("auth",), timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a gRPC deadline
        """Waits until each service's channel connects (the dev mesh while it starts)."""
        deadline = time.monotonic() + timeout
        for service in services:
            chan = self.transport.channel(service)
            try:
                await asyncio.wait_for(chan.channel_ready(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                raise Unavailable(f"{service} at {self.endpoints.address(service)} is not reachable") from None

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ---------------------------------------------------------------------------------------------
# The sync client: the same resources, each call run on the client's private loop thread.
# ---------------------------------------------------------------------------------------------
class _SyncResource:
    def __init__(self, inner: Any, loop: LoopThread) -> None:
        self._a = inner
        self._loop = loop


class Auth(_SyncResource):
    _a: AsyncAuth

    def register(self, email: str, password: str, display_name: str = "") -> auth_pb2.User:
        return self._loop.run(self._a.register(email, password, display_name))

    def login(self, email: str, password: str) -> auth_pb2.User:
        return self._loop.run(self._a.login(email, password))

    def refresh(self) -> Tokens:
        return self._loop.run(self._a.refresh())

    def logout(self) -> None:
        self._loop.run(self._a.logout())

    def me(self) -> auth_pb2.GetMeResponse:
        return self._loop.run(self._a.me())

    def public_keys(self) -> auth_pb2.ListPublicKeysResponse:
        return self._loop.run(self._a.public_keys())

    def list_users(self, *, page_size: int = 50, page_token: str = "") -> Page[auth_pb2.User]:
        return self._loop.run(self._a.list_users(page_size=page_size, page_token=page_token))

    def update_user(self, user_id: str, *, role: Literal["user", "admin"] | None = None, disabled: bool = False) -> auth_pb2.User:
        return self._loop.run(self._a.update_user(user_id, role=role, disabled=disabled))


class ApiKeys(_SyncResource):
    _a: AsyncApiKeys

    def create(self, name: str, scopes: Sequence[str] = (), *, ttl_seconds: int = 0) -> tuple[auth_pb2.ApiKey, str]:
        return self._loop.run(self._a.create(name, scopes, ttl_seconds=ttl_seconds))

    def list(self) -> list[auth_pb2.ApiKey]:
        return self._loop.run(self._a.list())

    def revoke(self, key_id: str) -> None:
        self._loop.run(self._a.revoke(key_id))


class Assets(_SyncResource):
    _a: AsyncAssets

    def upload(
        self, source: Source, *, name: str | None = None, content_type: str | None = None,
        labels: Mapping[str, str] | None = None, method: Literal["stream", "presigned"] = "stream",
        progress: ProgressCallback | None = None, request_id: str | None = None, chunk_size: int = CHUNK,
        timeout: float | None = 600.0,
    ) -> storage_pb2.Asset:
        return self._loop.run(self._a.upload(
            source, name=name, content_type=content_type, labels=labels, method=method, progress=progress,
            request_id=request_id, chunk_size=chunk_size, timeout=timeout,
        ))

    def get(self, asset_id: str) -> storage_pb2.Asset:
        return self._loop.run(self._a.get(asset_id))

    def list(self, *, kind: Literal["image", "video", "audio"] | None = None, page_size: int = 50, page_token: str = "") -> Page[storage_pb2.Asset]:
        return self._loop.run(self._a.list(kind=kind, page_size=page_size, page_token=page_token))

    def list_all(self, *, kind: Literal["image", "video", "audio"] | None = None) -> Iterator[storage_pb2.Asset]:
        return self._loop.iterate(self._a.list_all(kind=kind))

    def delete(self, asset_id: str) -> None:
        self._loop.run(self._a.delete(asset_id))

    def url(self, asset_id: str, *, expire_seconds: int = 0, attachment: bool = False, thumbnail: bool = False) -> str:
        return self._loop.run(self._a.url(asset_id, expire_seconds=expire_seconds, attachment=attachment, thumbnail=thumbnail))

    def read(self, asset_id: str, *, thumbnail: bool = False) -> bytes:
        return self._loop.run(self._a.read(asset_id, thumbnail=thumbnail))

    def download(
        self, asset_id: str, dest: str | os.PathLike[str] | None = None, *, thumbnail: bool = False,
        progress: ProgressCallback | None = None, method: Literal["stream", "url"] = "stream",
    ) -> Path:
        return self._loop.run(self._a.download(asset_id, dest, thumbnail=thumbnail, progress=progress, method=method))


class Jobs(_SyncResource, Generic[J, P]):
    _a: AsyncJobs[J, P]

    @property
    def kind(self) -> str:
        return self._a.kind

    def create(self, parameters: P, *, request_id: str | None = None, priority: int = 0) -> J:
        return self._loop.run(self._a.create(parameters, request_id=request_id, priority=priority))

    def get(self, job_id: str) -> J:
        return self._loop.run(self._a.get(job_id))

    def list(self, *, state: JobState | str | None = None, page_size: int = 50, page_token: str = "") -> Page[J]:
        return self._loop.run(self._a.list(state=state, page_size=page_size, page_token=page_token))

    def list_all(self, *, state: JobState | str | None = None) -> Iterator[J]:
        return self._loop.iterate(self._a.list_all(state=state))

    def cancel(self, job_id: str) -> J:
        return self._loop.run(self._a.cancel(job_id))

    def watch(self, job_id: str, *, after_sequence: int = 0, resume: bool = True) -> Iterator[JobProgress]:
        return self._loop.iterate(self._a.watch(job_id, after_sequence=after_sequence, resume=resume))

    def wait(
        self, job_id: str, *, on_progress: JobCallback | None = None, timeout: float | None = None,
        cancel_on_interrupt: bool = False,
    ) -> J:
        return self._loop.run(self._a.wait(job_id, on_progress=on_progress, timeout=timeout, cancel_on_interrupt=cancel_on_interrupt))

    def submit(self, parameters: P, *, request_id: str | None = None, priority: int = 0) -> Iterator[JobProgress]:
        return self._loop.iterate(self._a.submit(parameters, request_id=request_id, priority=priority))

    def run(
        self, parameters: P, *, on_progress: JobCallback | None = None, request_id: str | None = None,
        priority: int = 0, timeout: float | None = None,
    ) -> J:
        return self._loop.run(self._a.run(parameters, on_progress=on_progress, request_id=request_id, priority=priority, timeout=timeout))


class Generation(Jobs[generation_pb2.GenerationJob, generation_pb2.GenerationParameters]):
    _a: AsyncGeneration

    def list_models(self) -> list[generation_pb2.Model]:
        return self._loop.run(self._a.list_models())


class Render(Jobs[render_pb2.RenderJob, render_pb2.RenderParameters]):
    _a: AsyncRender

    def frame(self, timeline: timeline_pb2.Timeline, time_seconds: float, *, max_width: int = 0) -> render_pb2.RenderFrameResponse:
        return self._loop.run(self._a.frame(timeline, time_seconds, max_width=max_width))


class Projects(_SyncResource):
    _a: AsyncProjects

    def create(self, title: str, timeline: timeline_pb2.Timeline | None = None, *, request_id: str | None = None) -> project_pb2.Project:
        return self._loop.run(self._a.create(title, timeline, request_id=request_id))

    def get(self, project_id: str) -> project_pb2.Project:
        return self._loop.run(self._a.get(project_id))

    def list(self, *, page_size: int = 50, page_token: str = "") -> Page[project_pb2.Project]:
        return self._loop.run(self._a.list(page_size=page_size, page_token=page_token))

    def update(self, project: project_pb2.Project, *, fields: Iterable[str] = ()) -> project_pb2.Project:
        return self._loop.run(self._a.update(project, fields=fields))

    def delete(self, project_id: str, *, etag: str = "") -> None:
        self._loop.run(self._a.delete(project_id, etag=etag))


class Assistant(_SyncResource):
    _a: AsyncAssistant

    def enhance_prompt(self, idea: str, *, family: int = 0, max_words: int = 0) -> assistant_pb2.EnhancePromptResponse:
        return self._loop.run(self._a.enhance_prompt(idea, family=family, max_words=max_words))

    def status(self) -> assistant_pb2.GetAssistantStatusResponse:
        return self._loop.run(self._a.status())

    def chat(self, messages: Sequence[tuple[str, str]], *, project: assistant_pb2.ProjectContext | None = None) -> Iterator[assistant_pb2.ChatResponse]:
        return self._loop.iterate(self._a.chat(messages, project=project))


class Client:
    """The synchronous client; same arguments and resources as :class:`AsyncClient`.
    Ctrl-C during ``run``/``wait(cancel_on_interrupt=True)``/``submit`` cancels the job."""

    def __init__(
        self,
        endpoints: Endpoints | str | Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        tokens: Tokens | None = None,
        tls: TlsConfig | bool | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._loop = LoopThread()
        self.aio = AsyncClient(
            endpoints, api_key=api_key, tokens=tokens, tls=tls, timeout=timeout, retry=retry,
            on_tokens=on_tokens, channel_options=channel_options,
        )
        self.auth = Auth(self.aio.auth, self._loop)
        self.api_keys = ApiKeys(self.aio.api_keys, self._loop)
        self.assets = Assets(self.aio.assets, self._loop)
        self.generation = Generation(self.aio.generation, self._loop)
        self.face_swap: Jobs[face_swap_pb2.FaceSwapJob, face_swap_pb2.FaceSwapParameters] = Jobs(self.aio.face_swap, self._loop)
        self.render = Render(self.aio.render, self._loop)
        self.upscale: Jobs[render_pb2.UpscaleJob, render_pb2.UpscaleParameters] = Jobs(self.aio.upscale, self._loop)
        self.projects = Projects(self.aio.projects, self._loop)
        self.assistant = Assistant(self.aio.assistant, self._loop)

    @property
    def endpoints(self) -> Endpoints:
        return self.aio.endpoints

    @property
    def credentials(self) -> Any:
        return self.aio.credentials

    def use_tokens(self, tokens: Tokens) -> None:
        self.aio.use_tokens(tokens)

    def use_api_key(self, api_key: str) -> None:
        self.aio.use_credentials(ApiKeyCredentials(api_key))

    def jobs(self, kind: str) -> Jobs[Any, Any]:
        resources: dict[str, Jobs[Any, Any]] = {
            "generation": self.generation, "face_swap": self.face_swap, "render": self.render, "upscale": self.upscale,
        }
        if kind not in resources:
            raise ClientError(f"unknown job kind {kind!r}; one of {sorted(resources)}")
        return resources[kind]

    def wait_ready(self, services: Iterable[str] = ("auth",), timeout: float = 30.0) -> None:
        self._loop.run(self.aio.wait_ready(services, timeout))

    def close(self) -> None:
        if self._loop.loop.is_running():
            self._loop.run(self.aio.close())
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
