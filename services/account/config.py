"""Configuration of the account service (environment prefix VIARTE_ACCOUNT_, see services.kit.config)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from services.kit.config import Secret, ServiceConfig

__all__ = ["AccountConfig"]

HOUR = 3600.0


@dataclass(frozen=True)
class AccountConfig(ServiceConfig):
    service_name = "account"

    port: int = 50055
    metrics_port: int = 9105
    # Any SQLAlchemy URL; "" = sqlite:///<data_dir>/account.db.
    database_url: str = ""
    # Names this replica's webhook leases ("" = <hostname>-<pid>).
    replica_id: str = ""

    # Prices: the rate fields are ServiceConfig fields (services/kit/prices.py), shared by the job
    # services' estimates: set VIARTE_GENERATION_CREDITS_PER_MEGAPIXEL_FRAME_STEP etc. once for all.

    # A job's closed admission row (its charge replaced its estimate) is deleted this long after
    # its record committed: long enough for any lease settlement racing that record to have ended
    # (services/account/limits.py, prune_closed).
    admission_retention_seconds: float = 60.0

    # Webhooks. Deliveries to loopback/private/link-local addresses are refused unless this is set
    # (dev meshes and tests, whose receivers listen on 127.0.0.1).
    webhook_allow_private: bool = False
    webhook_max_endpoints: int = 20
    # At most 2048 (the size of the url column).
    webhook_max_url_length: int = 2048
    # One HTTP attempt (connect + answer).
    webhook_timeout_seconds: float = 10.0
    # Retries: the first after retry_initial, each next one `multiplier` times later, capped at
    # max_interval; a delivery is given up once its first attempt is older than the window.
    webhook_retry_initial_seconds: float = 30.0
    webhook_retry_multiplier: float = 2.0
    webhook_retry_max_interval_seconds: float = 6 * HOUR
    webhook_retry_window_seconds: float = 72 * HOUR
    # After RotateWebhookSecret the previous secret signs too for this long.
    webhook_secret_overlap_seconds: float = 24 * HOUR
    # The dispatcher: how often it looks for due deliveries without a wake-up, how long a claimed
    # delivery stays leased to one replica, how many it claims at once and sends concurrently.
    webhook_poll_seconds: float = 1.0
    webhook_lease_seconds: float = 60.0
    webhook_batch_size: int = 32
    webhook_concurrency: int = 16
    # Key encrypting the stored webhook secrets (AES-256-GCM; any string, hashed to 32 bytes);
    # "" = derived from internal_secret. Changing it makes existing endpoint secrets unreadable.
    webhook_secret_key: Secret = Secret("")

    @property
    def database(self) -> str:
        return self.database_url or self.sqlite_url()

    @property
    def replica(self) -> str:
        return self.replica_id or f"{socket.gethostname()}-{os.getpid()}"
