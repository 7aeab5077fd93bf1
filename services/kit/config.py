"""Service configuration: one frozen dataclass per service, loaded from the environment.

This module is the only place in the services that reads ``os.environ``. A field ``port`` of a
config whose ``service_name`` is ``"storage"`` reads ``VIARTE_STORAGE_PORT``, falling back to
``VIARTE_PORT``; ``<NAME>_FILE`` reads the value from a file (for secrets mounted by compose).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["ENV_PREFIX", "ConfigError", "Secret", "ServiceConfig", "env_names", "load_config"]

ENV_PREFIX = "VIARTE_"


class ConfigError(ValueError):
    """An environment variable could not be parsed into its config field."""


@dataclass(frozen=True)
class Secret:
    """A string that never shows in logs, reprs or tracebacks."""

    value: str = dataclasses.field(repr=False)

    def reveal(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class ServiceConfig:
    """Fields every service has. Subclasses set ``service_name`` and add their own fields."""

    service_name: ClassVar[str] = "service"

    host: str = "127.0.0.1"
    port: int = 0
    # -1 = no metrics endpoint, 0 = any free port.
    metrics_port: int = -1
    log_level: str = "INFO"
    # "json" (one object per line) or "console".
    log_format: str = "json"
    grace_period_seconds: float = 5.0
    data_dir: str = "var"
    auth_address: str = "127.0.0.1:50051"
    storage_address: str = "127.0.0.1:50052"
    # The account service (usage records, webhooks): the job services report every job end to it.
    account_address: str = "127.0.0.1:50055"
    jwt_issuer: str = "viarte-auth"
    jwt_audience: str = "viarte"
    # Shared by the mesh's services to obtain service tokens from auth (IssueServiceToken).
    internal_secret: Secret = Secret("dev-internal-secret-change-me")
    # Prices (credits, services/kit/prices.py): account charges finished jobs with them and the job
    # services estimate jobs at create; unprefixed VIARTE_<FIELD> sets them for every service at once.
    # Generation: per megapixel * frame * step; "model-id=rate" entries override it per model.
    generation_credits_per_megapixel_frame_step: float = 0.05
    generation_model_rates: tuple[str, ...] = ()
    face_swap_credits_per_frame: float = 0.5
    upscale_credits_per_frame: float = 0.25
    render_credits_per_second: float = 2.0
    # Training: per megapixel * frame (num_frames * batch_size) * optimizer step.
    training_credits_per_megapixel_frame_step: float = 0.15
    # Maximum concurrent RPCs; 0 = unlimited.
    max_concurrent_rpcs: int = 0
    # OpenTelemetry: export spans over OTLP/gRPC to this collector ("http://host:4317"; https:// for
    # TLS). "" = tracing off (nothing recorded or exported; an incoming traceparent still reaches logs).
    otlp_endpoint: str = ""
    # At start a service waits this long for its database (PostgreSQL starting with it, or down),
    # NOT_SERVING and answering UNAVAILABLE meanwhile; then it exits (compose restarts it).
    database_wait_seconds: float = 300.0

    @property
    def domain(self) -> str:
        """The ErrorInfo domain of this service."""
        return f"viarte.{self.service_name}"

    @property
    def bind_address(self) -> str:
        return f"{self.host}:{self.port}"

    def sqlite_url(self, name: str | None = None) -> str:
        return f"sqlite:///{Path(self.data_dir) / (name or self.service_name)}.db"


C = TypeVar("C", bound=ServiceConfig)


def env_names(cls: type[ServiceConfig], field_name: str) -> tuple[str, str]:
    """The service-specific and the mesh-wide variable names of a field, in lookup order."""
    upper = field_name.upper()
    return f"{ENV_PREFIX}{cls.service_name.upper()}_{upper}", f"{ENV_PREFIX}{upper}"


def load_config(cls: type[C], environ: Mapping[str, str] | None = None) -> C:
    """Build ``cls`` from the environment; unset variables keep the dataclass defaults."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = _lookup(env, env_names(cls, f.name))
        if raw is None:
            continue
        try:
            values[f.name] = _parse(hints[f.name], raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{env_names(cls, f.name)[0]}: {exc}") from None
    return cls(**values)


def _lookup(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in env:
            return env[name]
        if f"{name}_FILE" in env:
            return Path(env[f"{name}_FILE"]).read_text().strip()
    return None


def _parse(kind: Any, raw: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if raw == "" else _parse(inner[0], raw)
    if origin is tuple:
        (item, *_rest) = typing.get_args(kind)
        return tuple(_parse(item, part.strip()) for part in raw.split(",") if part.strip())
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind is Secret:
        return Secret(raw)
    if kind in (int, float, str, Path):
        return kind(raw)
    raise TypeError(f"unsupported config type {kind!r}")
