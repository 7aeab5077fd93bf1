from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Limits(_message.Message):
    __slots__ = ("monthly_credit_budget", "creates_per_minute", "reads_per_minute", "max_concurrent_jobs")
    MONTHLY_CREDIT_BUDGET_FIELD_NUMBER: _ClassVar[int]
    CREATES_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    READS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_JOBS_FIELD_NUMBER: _ClassVar[int]
    monthly_credit_budget: int
    creates_per_minute: int
    reads_per_minute: int
    max_concurrent_jobs: int
    def __init__(self, monthly_credit_budget: _Optional[int] = ..., creates_per_minute: _Optional[int] = ..., reads_per_minute: _Optional[int] = ..., max_concurrent_jobs: _Optional[int] = ...) -> None: ...
