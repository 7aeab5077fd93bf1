"""Viarte Studio: the Python client SDK, the ``viarte`` CLI and the generated gRPC stubs.

``from viarte import Client, AsyncClient`` — see :mod:`viarte.client`. Errors: :mod:`viarte.errors`.
Names are imported lazily so that importing a generated stub package (``viarte.auth.v1``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ApiKeyCredentials",
    "AsyncClient",
    "Client",
    "Cost",
    "Endpoints",
    "JobProgress",
    "JobState",
    "Placement",
    "RetryPolicy",
    "Stage",
    "TlsConfig",
    "TokenCredentials",
    "Tokens",
    "ViarteError",
    "face_swap_options",
    "generation_parameters",
]

_WHERE = {
    "AsyncClient": "viarte.client",
    "Client": "viarte.client",
    "face_swap_options": "viarte.client",
    "generation_parameters": "viarte.client",
    "Endpoints": "viarte.transport",
    "RetryPolicy": "viarte.transport",
    "TlsConfig": "viarte.transport",
    "ApiKeyCredentials": "viarte.credentials",
    "TokenCredentials": "viarte.credentials",
    "Tokens": "viarte.credentials",
    "Cost": "viarte.jobs",
    "JobProgress": "viarte.jobs",
    "JobState": "viarte.jobs",
    "Placement": "viarte.jobs",
    "Stage": "viarte.jobs",
    "ViarteError": "viarte.errors",
}

if TYPE_CHECKING:
    from viarte.client import AsyncClient, Client, face_swap_options, generation_parameters
    from viarte.credentials import ApiKeyCredentials, TokenCredentials, Tokens
    from viarte.errors import ViarteError
    from viarte.jobs import Cost, JobProgress, JobState, Placement, Stage
    from viarte.transport import Endpoints, RetryPolicy, TlsConfig


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'viarte' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
