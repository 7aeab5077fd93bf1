"""Structured logs: one JSON object per line on stderr, with the request id bound per RPC and the
current trace and span ids (``trace_id``, ``span_id``) on every line written inside a trace."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO, cast

import orjson
import structlog

from services.kit import tracing
from services.kit.config import ServiceConfig

__all__ = ["access_log", "configure_logging", "get_logger"]


def configure_logging(config: ServiceConfig) -> None:
    """Route stdlib and structlog records through one renderer (JSON or console)."""
    level = logging.getLevelNamesMapping().get(config.log_level.upper(), logging.INFO)
    console = config.log_format == "console"
    # orjson + a bytes logger keep the per-RPC access line at ~15 µs (the stdlib json path is ~30 µs).
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer(serializer=orjson.dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=(
            structlog.PrintLoggerFactory(file=cast(TextIO, _StderrText()))
            if console
            else structlog.BytesLoggerFactory(file=cast(BinaryIO, _StderrBytes()))
        ),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=config.service_name)
    global _access_sink
    if level > logging.INFO:
        _access_sink = None
    elif console:
        _access_sink = _console_access
    else:
        _access_sink = _json_access
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s", force=True)


def _add_trace_ids(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Joins a line to its trace: an RPC's, a job's or a worker task's (see services.kit.tracing)."""
    ids = tracing.log_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


# The per-RPC access line is the hottest log call: in JSON mode it skips structlog's processor chain
# (~15 µs) and writes one orjson line directly (~3 µs), with the same fields the chain would add.
_access_sink: Any = None


def _json_access(fields: dict[str, Any]) -> None:
    fields["level"] = "info"
    fields["timestamp"] = _utc_now_iso()
    sys.stderr.buffer.write(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))


_second = -1
_second_text = ""


def _utc_now_iso() -> str:
    """``datetime.now(UTC).isoformat()`` (always with microseconds) at a third of its cost: the
    date and time of the current second are formatted once per second."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:
        _second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = second
    return f"{_second_text}.{int((now - second) * 1_000_000):06d}+00:00"


def _console_access(fields: dict[str, Any]) -> None:
    structlog.get_logger("viarte.rpc").info(fields.pop("event"), **fields)


def access_log(fields: dict[str, Any]) -> None:
    """Write one access line (``fields`` must include ``event``); a no-op above INFO."""
    if _access_sink is not None:
        try:
            _access_sink(fields)
        except (OSError, ValueError, AttributeError):  # a broken log stream must never fail the RPC it describes
            pass


class _StderrBytes:
    """stderr resolved at each write, so a redirected or replaced sys.stderr is followed."""

    def write(self, data: bytes) -> None:
        sys.stderr.buffer.write(data)

    def flush(self) -> None:
        sys.stderr.flush()


class _StderrText:
    def write(self, data: str) -> None:
        sys.stderr.write(data)

    def flush(self) -> None:
        sys.stderr.flush()
