"""The worker's task table: job kind → task function. Pluggable: other areas add their tasks as
modules with a ``run(ctx, payload) -> dict`` function (and an optional ``KIND``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from services.inference.worker.context import TaskContext

__all__ = ["PLUGGABLE_TASK_MODULES", "TaskFn", "load_task_table"]

TaskFn = Callable[[TaskContext, dict[str, Any]], dict[str, Any]]

# kind → module; a module that is absent (or fails to import) simply isn't offered.
PLUGGABLE_TASK_MODULES: dict[str, str] = {
    "generation": "services.inference.worker.generate",
    "face_swap": "services.inference.faceswap.task",
}


def load_task_table(modules: dict[str, str] | None = None) -> dict[str, TaskFn]:
    table: dict[str, TaskFn] = {}
    for kind, module_name in (modules or PLUGGABLE_TASK_MODULES).items():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an area's broken task must not take the worker down
            if not isinstance(exc, ModuleNotFoundError):
                import logging

                logging.getLogger("viarte.worker").exception("task module %s failed to import", module_name)
            continue
        run = getattr(module, "run", None)
        if callable(run):
            table[getattr(module, "KIND", kind)] = run
    return table
