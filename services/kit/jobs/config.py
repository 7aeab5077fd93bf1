"""The job service's limits (``JobConfig``, filled by each service from its own config dataclass:
nothing here reads the environment) and its database-outage log (``DbHealth``)."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.logs import get_logger

__all__ = ["DbHealth", "JobConfig"]

_log = get_logger("viarte.jobs")


@dataclass(frozen=True)
class JobConfig:
    """The job service's limits; each service fills it from its own config dataclass."""

    # Jobs waiting in the queue (all owners, kinds and replicas) before Create answers QUEUE_FULL.
    max_queued: int = 100
    # Worker starts per job (crash retries, restarts and lease take-overs count) before it fails.
    max_attempts: int = 3
    # RetryInfo delay suggested with QUEUE_FULL.
    queue_full_retry_seconds: float = 5.0
    # Live events buffered per watcher before previews are dropped / the watcher re-reads the log.
    watcher_buffer: int = 256
    # Events waiting to be stored per running job before previews are dropped.
    pending_events_limit: int = 512
    # Highest priority a caller may ask for (0..max_priority).
    max_priority: int = 10
    # Queued jobs (the first N) that get an event whenever their queue position changes.
    announce_positions: int = 20
    # How long the announcer gathers queue changes before one announcement for them all: every
    # create, claim and cancel moves the queue, and each announcement reads the head (and on N
    # replicas takes their shared lock), so under load one per change was most of its cost.
    announce_gather_seconds: float = 0.05
    # A running job's lease: renewed every third of it; once expired, any replica re-queues the job.
    lease_seconds: float = 10.0
    # Fallback poll (queue, watched jobs) for when notifications do not arrive (LISTEN down).
    poll_seconds: float = 2.0
    # This replica's name in leases and logs ("inference-1"); "" = <hostname>-<pid>.
    replica_id: str = ""


class DbHealth:
    """One log line when the database becomes unreachable and one when it is back (not one per
    request or per loop turn). Never logs the URL: it may carry credentials."""

    def __init__(self, replica_id: str) -> None:
        self._replica = replica_id
        self.down = False

    def failed(self, what: str, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            _log.error("job_database_unavailable", operation=what, error=type(exc).__name__, replica=self._replica)

    def ok(self) -> None:
        if self.down:
            self.down = False
            _log.info("job_database_recovered", replica=self._replica)
