"""Saved editor projects: a store (blocking, transactional) and the ProjectService servicer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import grpc
from google.protobuf import timestamp_pb2
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.kit.auth import current_principal
from services.kit.db import run_db
from services.kit.errors import ServiceError, Violations
from services.kit.pagination import PageTokens, page_size
from services.render.models import ProjectRow
from services.render.reasons import Reason
from viarte.render.v1 import project_pb2, project_pb2_grpc, timeline_pb2

__all__ = ["ProjectServicer", "ProjectStore"]

_MAX_TIMELINE_BYTES = 2 * 1024 * 1024
_FIELDS = ("title", "timeline")


def _now_us() -> int:
    return time.time_ns() // 1000


def _new_etag() -> str:
    return uuid.uuid4().hex[:20]


def _timestamp(us: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


def to_proto(row: ProjectRow) -> project_pb2.Project:
    return project_pb2.Project(
        id=row.id,
        owner_id=row.owner_id,
        title=row.title,
        timeline=timeline_pb2.Timeline.FromString(row.timeline),
        etag=row.etag,
        create_time=_timestamp(row.create_us),
        update_time=_timestamp(row.update_us),
    )


@dataclass(frozen=True)
class _Changes:
    title: str | None
    timeline: bytes | None


class ProjectStore:
    """Blocking DB operations; every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, owner: str, title: str, timeline: bytes, request_id: str | None) -> ProjectRow:
        now = _now_us()
        row = ProjectRow(
            id=str(uuid.uuid4()), owner_id=owner, request_id=request_id, title=title, timeline=timeline,
            etag=_new_etag(), create_us=now, update_us=now,
        )
        try:
            with Session(self.engine, expire_on_commit=False) as s:
                s.add(row)
                s.commit()
                return row
        except IntegrityError:
            # The same request_id again (possibly concurrently): the first one wins.
            existing = self._by_request(owner, request_id)
            if existing is None:
                raise
            return existing

    def _by_request(self, owner: str, request_id: str | None) -> ProjectRow | None:
        if not request_id:
            return None
        with Session(self.engine, expire_on_commit=False) as s:
            return s.exec(
                select(ProjectRow).where(ProjectRow.owner_id == owner, ProjectRow.request_id == request_id)
            ).first()

    def find_request(self, owner: str, request_id: str) -> ProjectRow | None:
        return self._by_request(owner, request_id)

    def get(self, owner: str, project_id: str) -> ProjectRow:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(ProjectRow, project_id)
        if row is None or row.owner_id != owner:
            raise _not_found(project_id)
        return row

    def list(self, owner: str, limit: int, cursor: dict[str, object] | None) -> list[ProjectRow]:
        query = select(ProjectRow).where(ProjectRow.owner_id == owner)
        if cursor is not None:
            us, pid = cursor["u"], cursor["i"]
            query = query.where(
                (col(ProjectRow.update_us) < us) | ((col(ProjectRow.update_us) == us) & (col(ProjectRow.id) < pid))
            )
        query = query.order_by(col(ProjectRow.update_us).desc(), col(ProjectRow.id).desc()).limit(limit + 1)
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.exec(query).all())

    def update(self, owner: str, project_id: str, etag: str, changes: _Changes) -> ProjectRow:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(ProjectRow, project_id, with_for_update=True)
            if row is None or row.owner_id != owner:
                raise _not_found(project_id)
            if row.etag != etag:
                raise _etag_mismatch(project_id, row.etag)
            if changes.title is not None:
                row.title = changes.title
            if changes.timeline is not None:
                row.timeline = changes.timeline
            row.etag = _new_etag()
            row.update_us = max(_now_us(), row.update_us + 1)
            s.add(row)
            s.commit()
            return row

    def delete(self, owner: str, project_id: str, etag: str) -> None:
        with Session(self.engine) as s:
            row = s.get(ProjectRow, project_id, with_for_update=True)
            if row is None or row.owner_id != owner:
                raise _not_found(project_id)
            if etag and row.etag != etag:
                raise _etag_mismatch(project_id, row.etag)
            s.delete(row)
            s.commit()


def _not_found(project_id: str) -> ServiceError:
    return ServiceError.not_found(Reason.PROJECT_NOT_FOUND, "project not found", metadata={"project_id": project_id})


def _etag_mismatch(project_id: str, _current: str) -> ServiceError:
    return ServiceError.aborted(
        Reason.ETAG_MISMATCH, "the project was saved by someone else in between; reload it", metadata={"project_id": project_id}
    )


def _check_project(project: project_pb2.Project, fields: tuple[str, ...], max_tracks: int, max_clips: int) -> None:
    v = Violations()
    if "title" in fields:
        v.check(bool(project.title.strip()), "project.title", "is required")
        v.check(len(project.title) <= 200, "project.title", "at most 200 characters")
    if "timeline" in fields:
        t = project.timeline
        v.check(t.ByteSize() <= _MAX_TIMELINE_BYTES, "project.timeline", "is larger than 2 MiB")
        v.check(len(t.tracks) <= max_tracks, "project.timeline.tracks", f"at most {max_tracks} tracks")
        v.check(sum(len(x.clips) for x in t.tracks) <= max_clips, "project.timeline.tracks", f"at most {max_clips} clips")
    v.raise_if_any(Reason.INVALID_ARGUMENT)


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):  # type: ignore[misc]
    def __init__(self, store: ProjectStore, page_tokens: PageTokens, *, max_tracks: int = 32, max_clips: int = 500) -> None:
        self.store = store
        self.page_tokens = page_tokens
        self.max_tracks = max_tracks
        self.max_clips = max_clips

    async def CreateProject(self, request: project_pb2.CreateProjectRequest, context: grpc.aio.ServicerContext) -> project_pb2.CreateProjectResponse:
        owner = current_principal().user_id
        if request.request_id:
            existing = await run_db(self.store.find_request, owner, request.request_id)
            if existing is not None:
                return project_pb2.CreateProjectResponse(project=to_proto(existing))
        _check_project(request.project, _FIELDS, self.max_tracks, self.max_clips)
        row = await run_db(
            self.store.create, owner, request.project.title.strip(), request.project.timeline.SerializeToString(),
            request.request_id or None,
        )
        return project_pb2.CreateProjectResponse(project=to_proto(row))

    async def GetProject(self, request: project_pb2.GetProjectRequest, context: grpc.aio.ServicerContext) -> project_pb2.GetProjectResponse:
        row = await run_db(self.store.get, current_principal().user_id, request.id)
        return project_pb2.GetProjectResponse(project=to_proto(row))

    async def ListProjects(self, request: project_pb2.ListProjectsRequest, context: grpc.aio.ServicerContext) -> project_pb2.ListProjectsResponse:
        owner = current_principal().user_id
        filters = {"owner": owner, "kind": "project"}
        cursor = self.page_tokens.decode(request.page_token, filters, {"u": int, "i": str})
        limit = page_size(request.page_size)
        rows = await run_db(self.store.list, owner, limit, cursor)
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = self.page_tokens.encode({"u": rows[-1].update_us, "i": rows[-1].id}, filters)
        return project_pb2.ListProjectsResponse(projects=[to_proto(r) for r in rows], next_page_token=token)

    async def UpdateProject(self, request: project_pb2.UpdateProjectRequest, context: grpc.aio.ServicerContext) -> project_pb2.UpdateProjectResponse:
        owner = current_principal().user_id
        paths = tuple(request.update_mask.paths) or _FIELDS
        v = Violations()
        v.check(bool(request.project.id), "project.id", "is required")
        v.check(bool(request.project.etag), "project.etag", "is required (the etag of the version you edited)")
        for p in paths:
            v.check(p in _FIELDS, "update_mask", f"unknown field {p!r}; updatable: title, timeline")
        v.raise_if_any(Reason.INVALID_ARGUMENT)
        _check_project(request.project, paths, self.max_tracks, self.max_clips)
        changes = _Changes(
            title=request.project.title.strip() if "title" in paths else None,
            timeline=request.project.timeline.SerializeToString() if "timeline" in paths else None,
        )
        row = await run_db(self.store.update, owner, request.project.id, request.project.etag, changes)
        return project_pb2.UpdateProjectResponse(project=to_proto(row))

    async def DeleteProject(self, request: project_pb2.DeleteProjectRequest, context: grpc.aio.ServicerContext) -> project_pb2.DeleteProjectResponse:
        await run_db(self.store.delete, current_principal().user_id, request.id, request.etag)
        return project_pb2.DeleteProjectResponse()
