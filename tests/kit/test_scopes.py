"""The scope check itself: which principals it refuses and how (the mesh-wide test is tests/e2e/test_scopes.py)."""

from __future__ import annotations

import grpc
import pytest

from services.kit.auth import Principal, PrincipalKind
from services.kit.errors import ServiceError
from services.kit.scopes import check_scope

CREATE_PROJECT = "/viarte.render.v1.ProjectService/CreateProject"


def key(*scopes: str) -> Principal:
    return Principal("user-1", PrincipalKind.API_KEY, scopes=frozenset(scopes))


def refusal(principal: Principal, method: str) -> ServiceError:
    with pytest.raises(ServiceError) as exc:
        check_scope(principal, method)
    assert exc.value.code == grpc.StatusCode.PERMISSION_DENIED
    return exc.value


def test_a_key_lacking_the_scope_is_refused_with_the_scope_named() -> None:
    err = refusal(key("assets:read", "projects:read"), CREATE_PROJECT)
    assert err.reason == "MISSING_SCOPE" and err.metadata == {"scope": "projects:write"}
    check_scope(key("projects:write"), CREATE_PROJECT)


def test_users_and_services_hold_every_scope() -> None:
    for kind in (PrincipalKind.USER, PrincipalKind.SERVICE):
        check_scope(Principal("x", kind), CREATE_PROJECT)
        check_scope(Principal("x", kind), "/viarte.auth.v1.AuthService/CreateApiKey")


def test_keys_never_reach_session_rpcs_nor_rpcs_missing_from_the_table() -> None:
    every = key("assets:read", "assets:write", "jobs:read", "jobs:write", "projects:read", "projects:write", "assistant")
    assert refusal(every, "/viarte.auth.v1.AuthService/CreateApiKey").reason == "PERMISSION_DENIED"
    assert refusal(every, "/viarte.render.v1.ProjectService/ForkProject").reason == "PERMISSION_DENIED"  # fail closed
    check_scope(key("assets:read"), "/viarte.auth.v1.AuthService/GetMe")  # needs no scope


@pytest.mark.parametrize(
    "method",
    [
        "/viarte.render.v1.RenderService/CreateRenderJob",
        "/viarte.render.v1.UpscaleService/CreateUpscaleJob",
        "/viarte.inference.v1.GenerationService/CreateGenerationJob",
        "/viarte.inference.v1.FaceSwapService/CreateFaceSwapJob",
    ],
)
def test_creating_a_job_needs_the_scopes_to_read_its_inputs_and_store_its_result(method: str) -> None:
    """Issue 21: a job reads the assets it names and stores its result as a new asset."""
    for lacking in ("jobs:write", "assets:read", "assets:write"):
        held = {"jobs:write", "assets:read", "assets:write", "jobs:read"} - {lacking}
        err = refusal(key(*held), method)
        assert err.reason == "MISSING_SCOPE" and err.metadata == {"scope": lacking}
    check_scope(key("jobs:write", "assets:read", "assets:write"), method)
    # Cancelling touches no asset.
    check_scope(key("jobs:write"), method.replace("/Create", "/Cancel"))


def test_a_preview_frame_needs_the_scope_to_read_the_timelines_assets() -> None:
    frame = "/viarte.render.v1.RenderService/RenderFrame"
    assert refusal(key("jobs:write", "assets:write"), frame).metadata == {"scope": "assets:read"}
    assert refusal(key("assets:read"), frame).metadata == {"scope": "jobs:write"}
    check_scope(key("jobs:write", "assets:read"), frame)
