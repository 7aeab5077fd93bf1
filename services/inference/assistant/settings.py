"""The assistant's configuration fields (they live on the inference service's config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.kit.config import Secret, ServiceConfig

__all__ = ["AssistantConfig", "AssistantSettings"]


class AssistantSettings(Protocol):
    """What the assistant reads from the service config (`InferenceConfig` has these fields)."""

    @property
    def assistant_api_key(self) -> Secret: ...
    @property
    def assistant_model(self) -> str: ...
    @property
    def assistant_base_url(self) -> str: ...
    @property
    def assistant_chat_path(self) -> str: ...
    @property
    def assistant_timeout_seconds(self) -> float: ...
    @property
    def assistant_max_retries(self) -> int: ...
    @property
    def assistant_max_retry_wait_seconds(self) -> float: ...
    @property
    def assistant_user_requests_per_minute(self) -> int: ...
    @property
    def assistant_max_output_tokens(self) -> int: ...


@dataclass(frozen=True)
class AssistantConfig(ServiceConfig):
    """A stand-alone config with just the assistant's fields (tests, or an assistant-only server)."""

    service_name = "inference"
    # Groq key; empty = the assistant is off (FAILED_PRECONDITION ASSISTANT_NOT_CONFIGURED).
    assistant_api_key: Secret = Secret("")
    # Llama 3 family on Groq; any model of an OpenAI-compatible server (vLLM, llama.cpp, Ollama).
    assistant_model: str = "llama-3.3-70b-versatile"
    assistant_base_url: str = "https://api.groq.com"
    # Groq's SDK posts to /openai/v1/chat/completions; OpenAI-style servers use /v1/chat/completions.
    assistant_chat_path: str = "/openai/v1/chat/completions"
    assistant_timeout_seconds: float = 30.0
    assistant_max_retries: int = 2
    # An upstream 429 asking to wait longer than this is answered RESOURCE_EXHAUSTED right away.
    assistant_max_retry_wait_seconds: float = 2.0
    assistant_user_requests_per_minute: int = 20
    assistant_max_output_tokens: int = 1024
