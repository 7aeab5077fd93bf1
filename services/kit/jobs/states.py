"""The job state machine: the one place that decides which transitions are legal.

QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED; QUEUED -> CANCELLED | FAILED;
RUNNING -> QUEUED (re-queued after a worker crash or a restart). Terminal states never change.
"""

from __future__ import annotations

from viarte.type.v1 import job_pb2

__all__ = [
    "CANCELLED",
    "FAILED",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "TERMINAL",
    "InvalidTransition",
    "check_transition",
    "is_terminal",
    "state_name",
]

QUEUED = job_pb2.JOB_STATE_QUEUED
RUNNING = job_pb2.JOB_STATE_RUNNING
SUCCEEDED = job_pb2.JOB_STATE_SUCCEEDED
FAILED = job_pb2.JOB_STATE_FAILED
CANCELLED = job_pb2.JOB_STATE_CANCELLED

TERMINAL: frozenset[int] = frozenset({SUCCEEDED, FAILED, CANCELLED})

_ALLOWED: dict[int, frozenset[int]] = {
    job_pb2.JOB_STATE_UNSPECIFIED: frozenset({QUEUED}),
    QUEUED: frozenset({RUNNING, CANCELLED, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED, QUEUED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


class InvalidTransition(ValueError):
    """A transition the state machine forbids (a bug in the caller, never a client error)."""


def is_terminal(state: int) -> bool:
    return state in TERMINAL


def state_name(state: int) -> str:
    return str(job_pb2.JobState.Name(state))


def check_transition(current: int, new: int) -> None:
    if new not in _ALLOWED.get(current, frozenset()):
        raise InvalidTransition(f"{state_name(current)} -> {state_name(new)} is not a legal job transition")
