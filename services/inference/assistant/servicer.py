"""AssistantService: Magic Prompt (EnhancePrompt), the editor's Chat, and GetAssistantStatus."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy.engine import Engine

from services.inference.assistant.actions import TOOLS, GenerationValidator, RejectedAction, parse_action
from services.inference.assistant.client import ChatClient, upstream_error
from services.inference.assistant.config import AssistantConfig
from services.inference.assistant.prompts import (
    DEFAULT_MAX_WORDS,
    MAX_WORDS,
    chat_system_prompt,
    enhance_messages,
    family_negative,
)
from services.inference.assistant.ratelimit import UserRateLimiter
from services.inference.models.registry import ModelRegistry, Task
from services.kit.auth import current_principal
from services.kit.db import run_db
from services.kit.errors import ServiceError, Violations
from viarte.inference.v1 import assistant_pb2, assistant_pb2_grpc, generation_pb2

__all__ = ["AssistantServicer", "registry_validator"]

log = logging.getLogger(__name__)

MAX_IDEA_CHARS = 2000
MAX_MESSAGES = 50
MAX_CHAT_CHARS = 20_000
_NEGATIVE_WORDS = 60


def registry_validator(registry: ModelRegistry) -> GenerationValidator:
    """Checks a proposed generation against the models this deployment serves and their limits."""

    def validate(params: generation_pb2.GenerationParameters) -> None:
        spec = registry.get(params.model)
        if spec is None:
            raise ServiceError.invalid_argument("MODEL_NOT_FOUND", f"unknown model {params.model!r}")
        v = Violations()
        task = Task.from_proto(params.task)
        v.check(task in spec.tasks, "task", f"{spec.id} does not do {task}")
        lim = spec.limits
        for name, value, lo, hi in (
            ("width", params.width, lim.min_width, lim.max_width),
            ("height", params.height, lim.min_height, lim.max_height),
        ):
            if value:
                v.check(lo <= value <= hi, name, f"must be in [{lo}, {hi}]")
                v.check(value % lim.size_multiple == 0, name, f"must be a multiple of {lim.size_multiple}")
        if params.num_frames:
            v.check(lim.min_frames <= params.num_frames <= lim.max_frames, "num_frames",
                    f"must be in [{lim.min_frames}, {lim.max_frames}]")
        v.check(params.num_inference_steps <= lim.max_steps, "num_inference_steps", f"at most {lim.max_steps}")
        v.check(len(params.prompt) <= lim.max_prompt_chars, "prompt", f"at most {lim.max_prompt_chars} characters")
        v.check(task != Task.IMAGE_TO_VIDEO or bool(params.image_asset_id), "image_asset_id", "required for image_to_video")
        v.raise_if_any("INVALID_PARAMETERS", "invalid generation parameters")

    return validate


@dataclass
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class AssistantServicer(assistant_pb2_grpc.AssistantServiceServicer):  # type: ignore[misc]
    """Never executes anything the model says: text is streamed back, tool calls are validated and
    returned as proposals."""

    def __init__(
        self,
        config: AssistantConfig,
        *,
        engine: Engine,
        registry: ModelRegistry | None = None,
        validate_generation: GenerationValidator | None = None,
    ) -> None:
        self.config = config
        self.client = ChatClient(config)
        self.models = [m.id for m in registry] if registry is not None else []
        self.validate_generation = validate_generation or (registry_validator(registry) if registry else None)
        # In the inference database: every replica draws from the user's one bucket.
        self.limiter = UserRateLimiter(engine, config.assistant_user_requests_per_minute)

    async def close(self) -> None:
        await self.client.close()

    # -- RPCs ------------------------------------------------------------------------------------
    async def GetAssistantStatus(
        self, request: assistant_pb2.GetAssistantStatusRequest, context: grpc.aio.ServicerContext
    ) -> assistant_pb2.GetAssistantStatusResponse:
        current_principal()
        if not self.client.configured:
            return assistant_pb2.GetAssistantStatusResponse(
                available=False, reason="ASSISTANT_NOT_CONFIGURED: no API key is configured", model=self.client.model
            )
        return assistant_pb2.GetAssistantStatusResponse(available=True, model=self.client.model)

    async def EnhancePrompt(
        self, request: assistant_pb2.EnhancePromptRequest, context: grpc.aio.ServicerContext
    ) -> assistant_pb2.EnhancePromptResponse:
        # 1. who, configured, valid, within the user's rate
        user = current_principal().user_id
        self.client.require()
        max_words = _check_enhance(request)
        await run_db(self.limiter.acquire, user)
        # 2. ask the model for a JSON object
        completion = await self.client.complete(
            enhance_messages(request.idea.strip(), request.family, max_words),
            response_format={"type": "json_object"},
            max_tokens=min(self.config.assistant_max_output_tokens, 4 * (max_words + _NEGATIVE_WORDS) + 64),
            temperature=0.7,
        )
        # 3. parse and bound it
        prompt, negative = _parse_enhanced(completion)
        return assistant_pb2.EnhancePromptResponse(
            prompt=_bound_words(prompt, max_words),
            negative_prompt=_bound_words(negative or family_negative(request.family), _NEGATIVE_WORDS),
        )

    async def Chat(
        self, request: assistant_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[assistant_pb2.ChatResponse]:
        user = current_principal().user_id
        self.client.require()
        _check_chat(request)
        await run_db(self.limiter.acquire, user)
        messages = self._chat_messages(request)
        calls: dict[int, _ToolCall] = {}
        finish = "stop"
        async for chunk in self.client.stream(
            messages, tools=TOOLS, tool_choice="auto", max_tokens=self.config.assistant_max_output_tokens
        ):
            choice = _first_choice(chunk)
            if choice is None:
                continue
            delta = choice.delta
            if delta is not None and delta.content:
                yield assistant_pb2.ChatResponse(delta=delta.content)
            for tc in (delta.tool_calls if delta is not None else None) or []:
                _accumulate(calls, tc)
            if choice.finish_reason:
                finish = choice.finish_reason
        for response in self._actions(calls, request.project):
            yield response
        yield assistant_pb2.ChatResponse(finish_reason=finish if finish in ("stop", "length", "tool_calls") else "stop")

    # -- helpers ---------------------------------------------------------------------------------
    def _chat_messages(self, request: assistant_pb2.ChatRequest) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": chat_system_prompt(request.project, self.models)}]
        for m in request.messages:
            role = "user" if m.role == assistant_pb2.CHAT_ROLE_USER else "assistant"
            messages.append({"role": role, "content": m.content})
        return messages

    def _actions(
        self, calls: dict[int, _ToolCall], project: assistant_pb2.ProjectContext
    ) -> list[assistant_pb2.ChatResponse]:
        out = []
        for index in sorted(calls):
            call = calls[index]
            try:
                action = parse_action(call.id, call.name, "".join(call.arguments), project, self.validate_generation)
            except RejectedAction as rejected:
                log.info("assistant.action_rejected name=%s reason=%s", rejected.name, rejected.reason)
                out.append(
                    assistant_pb2.ChatResponse(delta=f"\n[proposed action {rejected.name!r} rejected: {rejected.reason}]")
                )
                continue
            out.append(assistant_pb2.ChatResponse(action=action))
        return out


def _check_enhance(request: assistant_pb2.EnhancePromptRequest) -> int:
    v = Violations()
    idea = request.idea.strip()
    v.check(bool(idea), "idea", "must not be empty")
    v.check(len(request.idea) <= MAX_IDEA_CHARS, "idea", f"at most {MAX_IDEA_CHARS} characters")
    v.check(0 <= request.max_words <= MAX_WORDS, "max_words", f"must be in [0, {MAX_WORDS}]")
    v.check(request.family in generation_pb2.ModelFamily.values(), "family", "unknown model family")
    v.raise_if_any("INVALID_ARGUMENT", "invalid prompt request")
    return request.max_words or DEFAULT_MAX_WORDS


def _check_chat(request: assistant_pb2.ChatRequest) -> None:
    v = Violations()
    v.check(0 < len(request.messages) <= MAX_MESSAGES, "messages", f"1 to {MAX_MESSAGES} messages")
    total = 0
    for i, m in enumerate(request.messages):
        total += len(m.content)
        v.check(m.role in (assistant_pb2.CHAT_ROLE_USER, assistant_pb2.CHAT_ROLE_ASSISTANT), f"messages[{i}].role", "user or assistant")
    if request.messages:
        last = request.messages[-1]
        v.check(last.role == assistant_pb2.CHAT_ROLE_USER, "messages", "the last message must be the user's")
        v.check(bool(last.content.strip()), f"messages[{len(request.messages) - 1}].content", "must not be empty")
    v.check(total <= MAX_CHAT_CHARS, "messages", f"at most {MAX_CHAT_CHARS} characters in all")
    v.raise_if_any("INVALID_ARGUMENT", "invalid chat request")


def _first_choice(chunk: Any) -> Any:
    choices = getattr(chunk, "choices", None)
    if choices is None:
        raise upstream_error(ValueError("chunk without choices"))
    return choices[0] if choices else None


def _accumulate(calls: dict[int, _ToolCall], tc: Any) -> None:
    call = calls.setdefault(int(tc.index or 0), _ToolCall())
    if tc.id:
        call.id = tc.id
    if tc.function is not None:
        if tc.function.name:
            call.name = tc.function.name
        if tc.function.arguments:
            call.arguments.append(tc.function.arguments)


def _parse_enhanced(completion: Any) -> tuple[str, str]:
    try:
        content = completion.choices[0].message.content or ""
        data = json.loads(content)
        prompt, negative = data["prompt"], data.get("negative_prompt") or ""
    except (AttributeError, IndexError, KeyError, TypeError, json.JSONDecodeError):
        raise ServiceError.unavailable("UPSTREAM_MALFORMED", "the language model did not answer with a prompt") from None
    if not isinstance(prompt, str) or not prompt.strip() or not isinstance(negative, str):
        raise ServiceError.unavailable("UPSTREAM_MALFORMED", "the language model did not answer with a prompt")
    return prompt.strip(), negative.strip()


def _bound_words(text: str, limit: int) -> str:
    words = text.split()
    if len(words) <= limit:
        return " ".join(words)
    return " ".join(words[:limit]).rstrip(",;:") 
