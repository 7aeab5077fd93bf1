"""FaceSwapService on the shared job pattern (kind ``face_swap``).

Create validates the parameters and the assets (through storage, as the caller: another user's
asset is NOT_FOUND like a missing one; a target that is not an image or a video, or a face asset
that is not an image, is INVALID_ARGUMENT UNSUPPORTED_MEDIA) before anything is queued. Whether the
source image holds a face is decided by the job itself, first thing on the worker (the server
process loads no models): such a job ends FAILED with FAILED_PRECONDITION NO_FACE_IN_SOURCE.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import grpc

from services.inference.faceswap.handler import KIND
from services.kit.errors import ServiceError, Violations
from services.kit.jobs import JobRpc, JobService, Prepared
from services.kit.prices import Usage
from services.kit.storage_client import StorageClient
from viarte.inference.v1 import face_swap_pb2, face_swap_pb2_grpc
from viarte.storage.v1 import storage_pb2
from viarte.type.v1 import asset_pb2

__all__ = ["FaceSwapServicer", "check_face_swap_assets", "check_face_swap_options", "target_frames"]

F = face_swap_pb2
_MAX_NAME = 200


def check_face_swap_options(options: F.FaceSwapOptions, v: Violations, prefix: str) -> None:
    """Field checks of FaceSwapOptions (also used for GenerationParameters.face_swap)."""
    v.check(bool(options.source_face_asset_id), f"{prefix}.source_face_asset_id", "required")
    v.check(options.selector in F.FaceSelectorMode.values(), f"{prefix}.selector", "unknown selector mode")
    v.check(0 <= options.face_index <= 1000, f"{prefix}.face_index", "must be in [0, 1000]")
    v.check(0.0 <= options.similarity_threshold <= 1.0, f"{prefix}.similarity_threshold", "must be in [0, 1]")
    if options.selector == F.FACE_SELECTOR_MODE_REFERENCE:
        v.check(bool(options.reference_face_asset_id), f"{prefix}.reference_face_asset_id", "required in REFERENCE mode")


async def check_face_swap_assets(store: StorageClient, owner: str, options: F.FaceSwapOptions) -> None:
    """The face images exist, belong to `owner` and are images."""
    await _require_kind(store, owner, options.source_face_asset_id, {asset_pb2.ASSET_KIND_IMAGE}, "source face")
    if options.selector == F.FACE_SELECTOR_MODE_REFERENCE:
        await _require_kind(store, owner, options.reference_face_asset_id, {asset_pb2.ASSET_KIND_IMAGE}, "reference face")


async def _require_kind(store: StorageClient, owner: str, asset_id: str, kinds: set[int], what: str) -> storage_pb2.Asset:
    asset = (await store.resolve(owner, asset_id)).asset
    if asset.kind not in kinds:
        raise ServiceError.invalid_argument(
            "UNSUPPORTED_MEDIA",
            f"the {what} asset is {asset_pb2.AssetKind.Name(asset.kind)} ({asset.content_type})",
            metadata={"asset_id": asset_id, "content_type": asset.content_type},
        )
    return asset


def target_frames(target: storage_pb2.Asset) -> int:
    """The frames a face swap of ``target`` reads: 1 for an image; a video's probed frame count, or
    duration x fps (rounded up) when the container did not state one."""
    if target.kind == asset_pb2.ASSET_KIND_IMAGE:
        return 1
    media = target.media
    if media.frame_count > 0:
        return int(media.frame_count)
    return max(0, math.ceil(media.duration_seconds * media.fps - 1e-6))


class FaceSwapServicer(face_swap_pb2_grpc.FaceSwapServiceServicer):  # type: ignore[misc]
    def __init__(self, jobs: JobService, store: StorageClient,
                 executor_ready: Callable[[], None] = lambda: None) -> None:
        self.jobs = jobs
        # Raises UNAVAILABLE while the executor cannot run jobs (the Ray cluster unreachable).
        self._ready = executor_ready
        self.store = store
        self.rpc = JobRpc(jobs, KIND, F.FaceSwapJob, F.FaceSwapParameters, F.FaceSwapResult)

    async def CreateFaceSwapJob(
        self, request: F.CreateFaceSwapJobRequest, context: grpc.aio.ServicerContext
    ) -> F.CreateFaceSwapJobResponse:
        return await self.rpc.create(request, F.CreateFaceSwapJobResponse,
                                     lambda user: self._prepare(user, request.parameters))

    async def _prepare(self, user: str, params: F.FaceSwapParameters) -> Prepared:
        # 1. fields
        v = Violations()
        v.check(bool(params.target_asset_id), "parameters.target_asset_id", "required")
        check_face_swap_options(params.options, v, "parameters.options")
        v.check(len(params.output_name) <= _MAX_NAME, "parameters.output_name", f"at most {_MAX_NAME} characters")
        v.raise_if_any("INVALID_PARAMETERS", "invalid face swap parameters")
        self._ready()
        # 2. assets: the caller's own, of the right kinds
        target = await _require_kind(
            self.store, user, params.target_asset_id, {asset_pb2.ASSET_KIND_IMAGE, asset_pb2.ASSET_KIND_VIDEO}, "target"
        )
        await check_face_swap_assets(self.store, user, params.options)
        # An image is one frame; a video is every frame storage probed at upload (the price is per
        # frame swapped, so the estimate is the most it can cost: frames without a face are free).
        return Prepared(params, usage=Usage(frames=target_frames(target)))

    async def GetFaceSwapJob(self, request: F.GetFaceSwapJobRequest, context: grpc.aio.ServicerContext) -> F.GetFaceSwapJobResponse:
        return await self.rpc.get(request, F.GetFaceSwapJobResponse)

    async def ListFaceSwapJobs(
        self, request: F.ListFaceSwapJobsRequest, context: grpc.aio.ServicerContext
    ) -> F.ListFaceSwapJobsResponse:
        return await self.rpc.list(request, F.ListFaceSwapJobsResponse)

    async def CancelFaceSwapJob(
        self, request: F.CancelFaceSwapJobRequest, context: grpc.aio.ServicerContext
    ) -> F.CancelFaceSwapJobResponse:
        return await self.rpc.cancel(request, F.CancelFaceSwapJobResponse)

    async def WatchFaceSwapJob(
        self, request: F.WatchFaceSwapJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[F.WatchFaceSwapJobResponse]:
        async for response in self.rpc.watch(request, F.WatchFaceSwapJobResponse):
            yield response
