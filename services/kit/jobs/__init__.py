"""The shared job pattern (inference and render): tables, state machine, broker, Watch, scheduler,
recovery, executor seam, the Get/List/Cancel/Watch RPC glue. See README.md."""

from services.kit.jobs.broker import Broker, Subscription
from services.kit.jobs.record import JobRecord, build_job_message
from services.kit.jobs.rpc import JobRpc, Prepared
from services.kit.jobs.runtime import (
    Executor,
    Handler,
    HandlerExecutor,
    JobCancelled,
    RetryableJobError,
    RunningJob,
)
from services.kit.jobs.service import JobConfig, JobService
from services.kit.jobs.states import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    InvalidTransition,
    check_transition,
    is_terminal,
)
from services.kit.jobs.tables import JobEventRow, JobRow, create_job_tables, drop_job_tables

__all__ = [
    "CANCELLED",
    "FAILED",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "TERMINAL",
    "Broker",
    "Executor",
    "Handler",
    "HandlerExecutor",
    "InvalidTransition",
    "JobCancelled",
    "JobConfig",
    "JobEventRow",
    "JobRecord",
    "JobRow",
    "JobRpc",
    "JobService",
    "Prepared",
    "RetryableJobError",
    "RunningJob",
    "Subscription",
    "build_job_message",
    "check_transition",
    "create_job_tables",
    "drop_job_tables",
    "is_terminal",
]
