"""Structured logs: one JSON object per line on stderr, with the request id bound per RPC."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from services.kit.config import ServiceConfig

__all__ = ["configure_logging", "get_logger"]


def configure_logging(config: ServiceConfig) -> None:
    """Route stdlib and structlog records through one renderer (JSON or console)."""
    level = logging.getLevelNamesMapping().get(config.log_level.upper(), logging.INFO)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if config.log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=config.service_name)
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s", force=True)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
