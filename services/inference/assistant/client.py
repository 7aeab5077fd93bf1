"""Chat-completions client on the `groq` SDK, with the service's error mapping and retry policy.

Upstream failures become `ServiceError`s: 429 -> RESOURCE_EXHAUSTED UPSTREAM_RATE_LIMITED (RetryInfo
from retry-after), timeout -> DEADLINE_EXCEEDED UPSTREAM_TIMEOUT, malformed answers -> UNAVAILABLE
UPSTREAM_MALFORMED, anything else -> UNAVAILABLE UPSTREAM_UNAVAILABLE. Retries are ours (the SDK's
are off) so that a long retry-after is reported to the user instead of slept through.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import groq
import httpx
import pydantic

from services.inference.assistant.config import AssistantConfig
from services.kit.errors import ServiceError

__all__ = ["ChatClient", "upstream_error"]

_GROQ_PATH = "/openai/v1/chat/completions"
_DEFAULT_RETRY_AFTER = 1.0
T = TypeVar("T")


class _PathTransport(httpx.AsyncHTTPTransport):
    """Sends the SDK's Groq path to the configured chat path (OpenAI-compatible servers)."""

    def __init__(self, chat_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._chat_path = chat_path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(_GROQ_PATH):
            prefix = request.url.path[: -len(_GROQ_PATH)]
            request.url = request.url.copy_with(path=prefix + self._chat_path)
        return await super().handle_async_request(request)


class ChatClient:
    def __init__(self, config: AssistantConfig) -> None:
        self.config = config
        self.model = config.assistant_model
        self._client: groq.AsyncGroq | None = None
        if config.assistant_api_key:
            self._client = groq.AsyncGroq(
                api_key=config.assistant_api_key.reveal(),
                base_url=config.assistant_base_url,
                timeout=config.assistant_timeout_seconds,
                max_retries=0,
                http_client=httpx.AsyncClient(
                    transport=_PathTransport(config.assistant_chat_path),
                    timeout=config.assistant_timeout_seconds,
                ),
            )

    @property
    def configured(self) -> bool:
        return self._client is not None

    def require(self) -> groq.AsyncGroq:
        if self._client is None:
            raise ServiceError.failed_precondition(
                "ASSISTANT_NOT_CONFIGURED", "the assistant has no API key configured on this deployment"
            )
        return self._client

    async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """One non-streamed completion (a groq `ChatCompletion`)."""
        client = self.require()
        return await self._with_retries(
            lambda: client.chat.completions.create(model=self.model, messages=messages, stream=False, **kwargs)
        )

    async def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[Any]:
        """Streamed chunks; retried only until the stream is open (nothing was sent on yet)."""
        client = self.require()
        chunks: Any = await self._with_retries(
            lambda: client.chat.completions.create(model=self.model, messages=messages, stream=True, **kwargs)
        )
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            raise upstream_error(exc) from exc
        finally:
            await chunks.close()

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                error = upstream_error(exc)
                wait = self._retry_wait(error, attempt)
                if wait is None:
                    raise error from exc
            attempt += 1
            await asyncio.sleep(wait)

    def _retry_wait(self, error: ServiceError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to give up now."""
        if attempt >= self.config.assistant_max_retries:
            return None
        if error.reason == "UPSTREAM_RATE_LIMITED":
            wait = error.retry_after or _DEFAULT_RETRY_AFTER
            return wait if wait <= self.config.assistant_max_retry_wait_seconds else None
        if error.reason == "UPSTREAM_UNAVAILABLE":
            return float(min(0.25 * 2**attempt, self.config.assistant_max_retry_wait_seconds))
        return None  # a timeout already cost the whole budget; malformed answers won't improve

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def upstream_error(exc: BaseException) -> ServiceError:
    """The client-facing error for a failure of the upstream model server."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, groq.RateLimitError):
        retry_after = _retry_after(exc.response.headers) or _DEFAULT_RETRY_AFTER
        return ServiceError.resource_exhausted(
            "UPSTREAM_RATE_LIMITED", "the language model is rate limited; retry later", retry_after=retry_after
        )
    if isinstance(exc, groq.APITimeoutError | httpx.TimeoutException | asyncio.TimeoutError):
        return ServiceError.deadline_exceeded("UPSTREAM_TIMEOUT", "the language model did not answer in time")
    if isinstance(
        exc, groq.APIResponseValidationError | json.JSONDecodeError | pydantic.ValidationError | UnicodeDecodeError
    ):
        return ServiceError.unavailable("UPSTREAM_MALFORMED", "the language model sent a malformed answer")
    if isinstance(exc, groq.APIStatusError):
        return ServiceError.unavailable(
            "UPSTREAM_UNAVAILABLE", f"the language model failed (HTTP {exc.status_code})", metadata={"status": str(exc.status_code)}
        )
    if isinstance(exc, groq.APIConnectionError | httpx.HTTPError | OSError):
        return ServiceError.unavailable("UPSTREAM_UNAVAILABLE", "the language model is unreachable")
    return ServiceError.unavailable("UPSTREAM_MALFORMED", f"unexpected answer from the language model ({type(exc).__name__})")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """retry-after-ms, retry-after in seconds, or an HTTP date (as the SDK reads them)."""
    try:
        return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (KeyError, TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())
