"""ProjectService: idempotent create, owner isolation, optimistic concurrency with etags."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.render.timelines import timeline, track
from viarte.errors import from_rpc_error
from viarte.render.v1 import project_pb2, project_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_project_lifecycle_and_etags(render_service, user_factory) -> None:
    user, other = await user_factory(), await user_factory()
    stub = project_pb2_grpc.ProjectServiceStub(render_service.channel)
    t = timeline()
    track(t).clips.add(asset_id="a", source_end_seconds=1)
    req = project_pb2.CreateProjectRequest(project=project_pb2.Project(title="Cut 1", timeline=t), request_id="p-1")
    created = (await stub.CreateProject(req, metadata=user.metadata)).project
    assert (await stub.CreateProject(req, metadata=user.metadata)).project.id == created.id
    assert created.owner_id == user.id and created.etag and created.timeline == t
    got = (await stub.GetProject(project_pb2.GetProjectRequest(id=created.id), metadata=user.metadata)).project
    assert got == created
    # autosave with the current etag
    t.tracks[0].clips[0].start_seconds = 0.5
    saved = (await stub.UpdateProject(
        project_pb2.UpdateProjectRequest(project=project_pb2.Project(id=created.id, etag=created.etag, timeline=t),
                                         update_mask=field_mask_pb2.FieldMask(paths=["timeline"])),
        metadata=user.metadata,
    )).project
    assert saved.etag != created.etag and saved.title == "Cut 1" and saved.timeline.tracks[0].clips[0].start_seconds == 0.5
    # a second tab still holding the old etag is refused
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpdateProject(
            project_pb2.UpdateProjectRequest(project=project_pb2.Project(id=created.id, etag=created.etag, title="Other tab"),
                                             update_mask=field_mask_pb2.FieldMask(paths=["title"])),
            metadata=user.metadata,
        )
    assert info.value.code() == grpc.StatusCode.ABORTED and from_rpc_error(info.value).reason == "ETAG_MISMATCH"
    # other users see NOT_FOUND everywhere
    for call in (
        stub.GetProject(project_pb2.GetProjectRequest(id=created.id), metadata=other.metadata),
        stub.DeleteProject(project_pb2.DeleteProjectRequest(id=created.id), metadata=other.metadata),
        stub.UpdateProject(project_pb2.UpdateProjectRequest(project=project_pb2.Project(id=created.id, etag=saved.etag, title="x")), metadata=other.metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and from_rpc_error(info.value).reason == "PROJECT_NOT_FOUND"
    assert list((await stub.ListProjects(project_pb2.ListProjectsRequest(), metadata=other.metadata)).projects) == []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.DeleteProject(project_pb2.DeleteProjectRequest(id=created.id, etag=created.etag), metadata=user.metadata)
    assert info.value.code() == grpc.StatusCode.ABORTED
    await stub.DeleteProject(project_pb2.DeleteProjectRequest(id=created.id, etag=saved.etag), metadata=user.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetProject(project_pb2.GetProjectRequest(id=created.id), metadata=user.metadata)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_pages_most_recent_first_and_validation(render_service, user_factory) -> None:
    user = await user_factory()
    stub = project_pb2_grpc.ProjectServiceStub(render_service.channel)
    ids = []
    for i in range(5):
        p = (await stub.CreateProject(project_pb2.CreateProjectRequest(project=project_pb2.Project(title=f"P{i}")), metadata=user.metadata)).project
        ids.append(p.id)
    # touching the oldest makes it the most recent
    first = (await stub.GetProject(project_pb2.GetProjectRequest(id=ids[0]), metadata=user.metadata)).project
    await stub.UpdateProject(project_pb2.UpdateProjectRequest(project=project_pb2.Project(id=ids[0], etag=first.etag, title="P0 renamed"),
                                                              update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=user.metadata)
    seen, token = [], ""
    while True:
        page = await stub.ListProjects(project_pb2.ListProjectsRequest(page_size=2, page_token=token), metadata=user.metadata)
        seen += [p.id for p in page.projects]
        token = page.next_page_token
        if not token:
            break
    assert seen == [ids[0], ids[4], ids[3], ids[2], ids[1]]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateProject(project_pb2.CreateProjectRequest(project=project_pb2.Project(title="  ")), metadata=user.metadata)
    err = from_rpc_error(info.value)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and [f.field for f in err.field_violations] == ["project.title"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListProjects(project_pb2.ListProjectsRequest(page_token="bogus"), metadata=user.metadata)
    assert from_rpc_error(info.value).reason == "INVALID_PAGE_TOKEN"
