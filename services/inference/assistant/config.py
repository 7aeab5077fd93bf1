"""AssistantConfig: the prompt assistant's part of the inference service's config.

`InferenceConfig` is composed of this part, so each field keeps its flat environment name
(``VIARTE_INFERENCE_ASSISTANT_API_KEY`` ...) and is declared only here.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.config import Secret

__all__ = ["AssistantConfig"]


@dataclass(frozen=True)
class AssistantConfig:
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
