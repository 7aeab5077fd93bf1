"""The browser-facing gateway: Envoy (gRPC-Web → gRPC) config and launcher, and the editor build."""

from gateway.config import GatewayConfig
from gateway.envoy import EnvoyProcess, start_envoy, validate_config

__all__ = ["EnvoyProcess", "GatewayConfig", "start_envoy", "validate_config"]
