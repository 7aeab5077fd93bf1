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

One module per resource (``auth``, ``assets``, ``jobs``, ``generation``, ``render``, ``projects``,
``assistant``, ``account``: usage and webhooks), each holding the async resource and its sync twin, which ``_base.sync`` generates
from the async methods; ``_client`` holds the two clients. Every name is re-exported here.
"""

from __future__ import annotations

from viarte.client._base import Page, SyncResource, sync
from viarte.client._client import AsyncClient, Client
from viarte.client.account import AsyncUsage, AsyncWebhooks, Usage, Webhooks
from viarte.client.assets import CHUNK, Assets, AsyncAssets, ProgressCallback, Source
from viarte.client.assistant import Assistant, AsyncAssistant
from viarte.client.auth import ApiKeys, AsyncApiKeys, AsyncAuth, Auth
from viarte.client.generation import AsyncGeneration, Generation, face_swap_options, generation_parameters
from viarte.client.jobs import AsyncJobs, JobCallback, Jobs
from viarte.client.projects import AsyncProjects, Projects
from viarte.client.render import AsyncRender, Render
from viarte.client.training import AsyncTraining, Training, training_parameters

__all__ = [
    "CHUNK",
    "ApiKeys",
    "Assets",
    "Assistant",
    "AsyncApiKeys",
    "AsyncAssets",
    "AsyncAssistant",
    "AsyncAuth",
    "AsyncClient",
    "AsyncGeneration",
    "AsyncJobs",
    "AsyncProjects",
    "AsyncRender",
    "AsyncTraining",
    "AsyncUsage",
    "AsyncWebhooks",
    "Auth",
    "Client",
    "Generation",
    "JobCallback",
    "Jobs",
    "Page",
    "ProgressCallback",
    "Projects",
    "Render",
    "Source",
    "SyncResource",
    "Training",
    "Usage",
    "Webhooks",
    "face_swap_options",
    "generation_parameters",
    "sync",
    "training_parameters",
]
