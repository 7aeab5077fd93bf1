"""The two clients: ``AsyncClient`` holds the transport and the async resources; ``Client`` runs
that same client on a private loop thread and holds the sync twin of each resource."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from viarte._sync import LoopThread
from viarte.client.account import AsyncUsage, AsyncWebhooks, Usage, Webhooks
from viarte.client.assets import Assets, AsyncAssets
from viarte.client.assistant import Assistant, AsyncAssistant
from viarte.client.auth import ApiKeys, AsyncApiKeys, AsyncAuth, Auth
from viarte.client.generation import FACE_SWAP, GENERATION, AsyncGeneration, Generation
from viarte.client.jobs import AsyncJobs, Jobs
from viarte.client.projects import AsyncProjects, Projects
from viarte.client.render import RENDER, UPSCALE, AsyncRender, Render
from viarte.client.training import TRAINING, AsyncTraining, Training
from viarte.credentials import ApiKeyCredentials, TokenCredentials, Tokens
from viarte.errors import ClientError, Unavailable
from viarte.inference.v1 import face_swap_pb2
from viarte.render.v1 import render_pb2
from viarte.transport import Endpoints, RetryPolicy, TlsConfig, Transport

__all__ = ["AsyncClient", "Client"]


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
        self.generation = AsyncGeneration(self, GENERATION)
        self.face_swap: AsyncJobs[face_swap_pb2.FaceSwapJob, face_swap_pb2.FaceSwapParameters] = AsyncJobs(self, FACE_SWAP)
        self.render = AsyncRender(self, RENDER)
        self.upscale: AsyncJobs[render_pb2.UpscaleJob, render_pb2.UpscaleParameters] = AsyncJobs(self, UPSCALE)
        self.training = AsyncTraining(self, TRAINING)
        self.projects = AsyncProjects(self)
        self.assistant = AsyncAssistant(self)
        self.usage = AsyncUsage(self)
        self.webhooks = AsyncWebhooks(self)
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
        """The job resource for ``generation``, ``face_swap``, ``render``, ``upscale`` or ``training``."""
        resources: dict[str, AsyncJobs[Any, Any]] = {
            "generation": self.generation, "face_swap": self.face_swap, "render": self.render, "upscale": self.upscale,
            "training": self.training,
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
        self.training = Training(self.aio.training, self._loop)
        self.projects = Projects(self.aio.projects, self._loop)
        self.assistant = Assistant(self.aio.assistant, self._loop)
        self.usage = Usage(self.aio.usage, self._loop)
        self.webhooks = Webhooks(self.aio.webhooks, self._loop)

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
        """The job resource for ``generation``, ``face_swap``, ``render``, ``upscale`` or ``training``."""
        inner = self.aio.jobs(kind)  # the one list of kinds (and its error for an unknown one)
        twins: tuple[Jobs[Any, Any], ...] = (self.generation, self.face_swap, self.render, self.upscale, self.training)
        return next(twin for twin in twins if twin._a is inner)

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
