"""Saved editor projects with etag concurrency (``viarte.render.v1.ProjectService``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from google.protobuf import field_mask_pb2

from viarte.client._base import Page, SyncResource, _Resource, sync
from viarte.render.v1 import project_pb2, project_pb2_grpc, timeline_pb2

__all__ = ["AsyncProjects", "Projects"]


class AsyncProjects(_Resource):
    """Saved editor projects with etag concurrency (``viarte.render.v1.ProjectService``)."""

    @property
    def _stub(self) -> project_pb2_grpc.ProjectServiceStub:
        return self._t.stub(project_pb2_grpc.ProjectServiceStub, "render")

    async def create(
        self, title: str, timeline: timeline_pb2.Timeline | None = None, *, request_id: str | None = None
    ) -> project_pb2.Project:
        project = project_pb2.Project(title=title, timeline=timeline or timeline_pb2.Timeline())
        req = project_pb2.CreateProjectRequest(project=project, request_id=request_id or uuid.uuid4().hex)
        resp: project_pb2.CreateProjectResponse = await self._t.unary(self._stub.CreateProject, req, retry=True)
        return resp.project

    async def get(self, project_id: str) -> project_pb2.Project:
        req = project_pb2.GetProjectRequest(id=project_id)
        resp: project_pb2.GetProjectResponse = await self._t.unary(self._stub.GetProject, req, retry=True)
        return resp.project

    async def list(self, *, page_size: int = 50, page_token: str = "") -> Page[project_pb2.Project]:
        req = project_pb2.ListProjectsRequest(page_size=page_size, page_token=page_token)
        resp = await self._t.unary(self._stub.ListProjects, req, retry=True)
        return Page(list(resp.projects), resp.next_page_token)

    async def update(self, project: project_pb2.Project, *, fields: Iterable[str] = ()) -> project_pb2.Project:
        """Saves ``project`` (its ``etag`` must be current, else ``Aborted``/ETAG_MISMATCH).
        Retrying is safe: a replay of an applied update fails the etag check instead of applying twice."""
        req = project_pb2.UpdateProjectRequest(project=project, update_mask=field_mask_pb2.FieldMask(paths=list(fields)))
        resp: project_pb2.UpdateProjectResponse = await self._t.unary(self._stub.UpdateProject, req, retry=True)
        return resp.project

    async def delete(self, project_id: str, *, etag: str = "") -> None:
        await self._t.unary(self._stub.DeleteProject, project_pb2.DeleteProjectRequest(id=project_id, etag=etag), retry=True)


class Projects(SyncResource[AsyncProjects]):
    """The sync :class:`AsyncProjects`."""

    create = sync(AsyncProjects.create)
    get = sync(AsyncProjects.get)
    list = sync(AsyncProjects.list)
    update = sync(AsyncProjects.update)
    delete = sync(AsyncProjects.delete)
