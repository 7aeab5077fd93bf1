"""A real chat-completions HTTP server on 127.0.0.1 that stands in for Groq (or any OpenAI-compatible
server) in tests: JSON and SSE-streamed answers, tool calls, and scripted failures (status codes
with headers such as retry-after, slow answers for timeouts, malformed bodies).

Answers to ``POST /openai/v1/chat/completions`` (Groq's path) and ``POST /v1/chat/completions``
(OpenAI-style servers) come from a FIFO of scripted `Reply`s; every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeChatServer", "RecordedRequest", "Reply", "ToolCall"]

PATHS = ("/openai/v1/chat/completions", "/v1/chat/completions")


@dataclass(frozen=True)
class ToolCall:
    name: str
    # A dict is sent as JSON text; a str is sent verbatim (to script invalid arguments).
    arguments: dict[str, Any] | str


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # None = "tool_calls" when there are tool calls, else "stop"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering at all (timeouts), and between streamed chunks.
    delay: float = 0.0
    chunk_delay: float = 0.0
    # Sent instead of a well-formed answer (JSON body, or the data of one SSE event when streaming).
    malformed: str | None = None
    # Characters of content per streamed chunk.
    chunk_chars: int = 3
    error_body: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeChatServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------
    def start(self) -> FakeChatServer:
        handler = _handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-chat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        """Replace the queue of answers (and forget recorded requests)."""
        with self._lock:
            self.replies = deque(replies)
            self.requests = []

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.replies.popleft() if self.replies else Reply(content="(no scripted reply)")


def _handler(server: FakeChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path not in PATHS:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
                return
            reply = server._next(RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if reply.delay:
                time.sleep(reply.delay)
            try:
                if reply.status != 200:
                    error = reply.error_body or {"error": {"message": f"scripted {reply.status}", "type": "scripted"}}
                    self._json(reply.status, error, reply.headers)
                elif body.get("stream"):
                    self._stream(body, reply)
                elif reply.malformed is not None:
                    self._raw(200, reply.malformed.encode(), "application/json", reply.headers)
                else:
                    self._json(200, _completion(body, reply), reply.headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeouts)

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._raw(status, json.dumps(payload).encode(), "application/json", headers or {})

        def _raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, body: dict[str, Any], reply: Reply) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.close_connection = True
            events = [json.dumps(c) for c in _chunks(body, reply)]
            if reply.malformed is not None:
                events.insert(1, reply.malformed)
            for event in [*events, "[DONE]"]:
                self.wfile.write(f"data: {event}\n\n".encode())
                self.wfile.flush()
                if reply.chunk_delay:
                    time.sleep(reply.chunk_delay)

    return Handler


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _arguments(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": c.name, "arguments": _arguments(c)}}
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply), "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def _chunks(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body.get("model", "")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    text = reply.content
    step = max(1, reply.chunk_chars)
    out += [chunk({"content": text[i : i + step]}) for i in range(0, len(text), step)]
    for i, call in enumerate(reply.tool_calls):
        args = _arguments(call)
        head = {"index": i, "id": f"call_{i}", "type": "function", "function": {"name": call.name, "arguments": ""}}
        out.append(chunk({"tool_calls": [head]}))
        half = len(args) // 2  # arguments arrive in pieces, as real servers send them
        for piece in (args[:half], args[half:]):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    out.append(chunk({}, _finish(reply)))
    return out
