"""Budgets and request limits a caller carries (issue 16): the API key's own and its user's, as
auth's VerifyApiKey answered them (``viarte.type.v1.Limits``; 0 = no limit).

Signed-in sessions carry their user's limits in the access token (claim ``lim``, written by auth at
each issue and refresh: ``limits_claim``), so an admin's change reaches a session at its next
refresh (``access_token_ttl_seconds``), an API key's within ``api_key_max_age_seconds``.

Where they are enforced: the job services at each job call (``JobService.create`` admits the job
from a block leased with ``LeaseAdmissions``, ``JobRpc`` counts reads with ``CheckRead``), against
the account service's database: one shared store for every replica of every
job service, where the month's charges already live. A caller without limits costs no extra call.
"""

from __future__ import annotations

from dataclasses import dataclass

from viarte.type.v1 import limits_pb2

__all__ = ["Limits", "limits_claim"]


@dataclass(frozen=True)
class Limits:
    monthly_credit_budget: int = 0
    creates_per_minute: int = 0
    reads_per_minute: int = 0
    max_concurrent_jobs: int = 0

    @classmethod
    def from_proto(cls, m: limits_pb2.Limits) -> Limits:
        return cls(int(m.monthly_credit_budget), int(m.creates_per_minute), int(m.reads_per_minute),
                   int(m.max_concurrent_jobs))  # fmt: skip

    def to_proto(self) -> limits_pb2.Limits:
        return limits_pb2.Limits(monthly_credit_budget=self.monthly_credit_budget,
                                 creates_per_minute=self.creates_per_minute, reads_per_minute=self.reads_per_minute,
                                 max_concurrent_jobs=self.max_concurrent_jobs)  # fmt: skip

    @property
    def on_create(self) -> bool:
        """Whether a create must be admitted (budget, create rate or concurrency set)."""
        return bool(self.monthly_credit_budget or self.creates_per_minute or self.max_concurrent_jobs)

    @classmethod
    def from_claim(cls, claim: object) -> Limits:
        """The ``lim`` claim of an access token ("budget,creates,reads,concurrent"); absent: none."""
        if not claim:
            return cls()
        parts = str(claim).split(",")
        if len(parts) != 4:
            raise ValueError("the lim claim holds four numbers")
        return cls(*(int(p) for p in parts))


def limits_claim(m: limits_pb2.Limits) -> str:
    return f"{m.monthly_credit_budget},{m.creates_per_minute},{m.reads_per_minute},{m.max_concurrent_jobs}"
