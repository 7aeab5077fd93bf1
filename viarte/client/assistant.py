"""Magic Prompt and the editor assistant (``viarte.inference.v1.AssistantService``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from viarte.client._base import SyncResource, _Resource, sync
from viarte.inference.v1 import assistant_pb2, assistant_pb2_grpc

__all__ = ["Assistant", "AsyncAssistant"]


class AsyncAssistant(_Resource):
    """Magic Prompt and the editor assistant (``viarte.inference.v1.AssistantService``)."""

    @property
    def _stub(self) -> assistant_pb2_grpc.AssistantServiceStub:
        return self._t.stub(assistant_pb2_grpc.AssistantServiceStub, "inference")

    async def enhance_prompt(
        self, idea: str, *, family: int = 0, max_words: int = 0
    ) -> assistant_pb2.EnhancePromptResponse:
        req = assistant_pb2.EnhancePromptRequest(idea=idea, family=family, max_words=max_words)  # type: ignore[arg-type]
        resp: assistant_pb2.EnhancePromptResponse = await self._t.unary(
            self._stub.EnhancePrompt, req, retry=True, timeout=120.0
        )
        return resp

    async def status(self) -> assistant_pb2.GetAssistantStatusResponse:
        req = assistant_pb2.GetAssistantStatusRequest()
        resp: assistant_pb2.GetAssistantStatusResponse = await self._t.unary(self._stub.GetAssistantStatus, req, retry=True)
        return resp

    async def chat(
        self, messages: Sequence[tuple[str, str]], *, project: assistant_pb2.ProjectContext | None = None
    ) -> AsyncIterator[assistant_pb2.ChatResponse]:
        """Streams the answer; ``messages`` are ``(role, text)`` with role "user" or "assistant"."""
        roles = {"user": assistant_pb2.CHAT_ROLE_USER, "assistant": assistant_pb2.CHAT_ROLE_ASSISTANT}
        req = assistant_pb2.ChatRequest(
            messages=[assistant_pb2.ChatMessage(role=roles[r], content=c) for r, c in messages], project=project
        )
        async for msg in self._t.unary_stream(self._stub.Chat, req, timeout=300.0):
            yield msg


class Assistant(SyncResource[AsyncAssistant]):
    """The sync :class:`AsyncAssistant`."""

    enhance_prompt = sync(AsyncAssistant.enhance_prompt)
    status = sync(AsyncAssistant.status)
    chat = sync(AsyncAssistant.chat)
