"""Render service tables: saved projects (the job tables come from services.kit.jobs)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["DraftSegmentRow", "ProjectRow"]


class ProjectRow(SQLModel, table=True):
    __tablename__ = "render_project"
    __table_args__ = (
        sa.UniqueConstraint("owner_id", "request_id", name="uq_render_project_owner_request"),
        sa.Index("ix_render_project_owner_update", "owner_id", "update_us"),
    )

    id: str = Field(primary_key=True, max_length=36)
    owner_id: str = Field(max_length=64)
    # NULL when the client sent none (NULLs never collide in the unique constraint).
    request_id: str | None = Field(default=None, max_length=128)
    title: str = Field(max_length=200)
    # viarte.render.v1.Timeline, serialised.
    timeline: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    etag: str = Field(max_length=64)
    # Microseconds since the epoch: exact and sortable on every backend.
    create_us: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    update_us: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class DraftSegmentRow(SQLModel, table=True):
    """Playback cache (issue 19): one rendered draft segment, or a cached loudness measurement, by
    the hash of everything that made it. In the database, not a process: every replica shares it."""

    __tablename__ = "render_draft_segment"
    __table_args__ = (sa.Index("ix_render_draft_segment_used", "used_us"),)

    key: str = Field(primary_key=True, max_length=64)
    # "segment" (fragmented MP4) or "loudness" (JSON).
    kind: str = Field(max_length=16)
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    # Microseconds since the epoch of the last read or write: the least recently used go first.
    used_us: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
