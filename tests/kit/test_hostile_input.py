"""Kit defences against hostile input: signed page tokens, the enum check, capped error echoes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from services.kit.config import Secret, ServiceConfig
from services.kit.enums import enum_violations
from services.kit.errors import FieldViolation, ServiceError
from services.kit.pagination import PageTokens
from viarte.render.v1 import project_pb2, render_pb2
from viarte.render.v1 import timeline_pb2 as tl
from viarte.storage.v1 import storage_pb2

SCHEMA = {"t": int, "id": str}
FILTERS = {"owner": "alice", "state": 0}


def _tokens(secret: str = "s3cret", service: str = "render") -> PageTokens:
    cls = type("Cfg", (ServiceConfig,), {"service_name": service})
    return PageTokens.for_service(cls(internal_secret=Secret(secret)))


def _refused(tokens: PageTokens, token: str, filters: dict[str, object] = FILTERS) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        tokens.decode(token, filters, SCHEMA)
    err = info.value
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in err.field_violations] == ["page_token"]
    return err


def _unsigned(payload: object) -> str:
    """What today's tokens look like: base64 JSON anybody can write."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_tokens_round_trip_across_instances_of_one_service() -> None:
    token = _tokens().encode({"t": 2**62, "id": "abc"}, FILTERS)
    # Another replica (or the same service after a restart) derives the same key from its config.
    assert _tokens().decode(token, FILTERS, SCHEMA) == {"t": 2**62, "id": "abc"}
    assert _tokens().decode("", FILTERS, SCHEMA) is None
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert _tokens().decode(_tokens().encode({"t": when}, {}), {}, {"t": datetime}) == {"t": when}


@pytest.mark.parametrize(
    "forged",
    [
        _unsigned({"c": {"t": 2**70, "id": "x"}, "f": "0"}),  # SQLite integer overflow
        _unsigned({"c": {"t": "x"}, "f": "0"}),
        _unsigned({"x": 1}),  # KeyError
        _unsigned([1, 2]),
        "bm9wZQ",
        "!!!",
        "a.b.c",
        "x" * 5000,
        "é.é",
    ],
)
def test_forged_tokens_are_refused(forged: str) -> None:
    _refused(_tokens(), forged)


def test_tokens_of_another_service_or_secret_or_filter_are_refused() -> None:
    token = _tokens().encode({"t": 1, "id": "a"}, FILTERS)
    _refused(_tokens(service="inference"), token)
    _refused(_tokens(secret="other"), token)
    _refused(_tokens(), token, {"owner": "bob", "state": 0})
    body, mac = token.split(".")
    _refused(_tokens(), f"{body}x.{mac}")


@pytest.mark.parametrize(
    "cursor", [{"t": 2**63, "id": "a"}, {"t": -(2**63) - 1, "id": "a"}, {"t": 1.5, "id": "a"}, {"t": True, "id": "a"},
               {"t": 1, "id": 7}, {"t": 1, "id": "a" * 300}, {"t": 1}, {"t": 1, "id": "a", "more": 1}],
)
def test_signed_cursors_are_still_checked_against_the_schema(cursor: dict[str, object]) -> None:
    # A leaked key (or a bug in an encoder) must still never hand the database an unusable value.
    tokens = _tokens()
    _refused(tokens, tokens.encode(cursor, FILTERS))


def test_enum_violations_name_the_nested_field_path() -> None:
    timeline = tl.Timeline()
    track = timeline.tracks.add(kind=tl.TRACK_KIND_VIDEO)
    track.clips.add(asset_id="a")
    clip = track.clips.add(asset_id="b", fit=99)
    clip.filters.speed_keyframes.add(time_seconds=0, value=1, easing=42)
    timeline.tracks.add(kind=77)
    request = render_pb2.CreateRenderJobRequest(parameters=render_pb2.RenderParameters(timeline=timeline))
    fields = {v.field: v.description for v in enum_violations(request)}
    assert set(fields) == {
        "parameters.timeline.tracks[0].clips[1].fit",
        "parameters.timeline.tracks[0].clips[1].filters.speed_keyframes[0].easing",
        "parameters.timeline.tracks[1].kind",
    }
    assert "99" in fields["parameters.timeline.tracks[0].clips[1].fit"]
    assert enum_violations(storage_pb2.ListAssetsRequest(kind=99))[0].field == "kind"
    assert enum_violations(project_pb2.CreateProjectRequest(project=project_pb2.Project(timeline=tl.Timeline()))) == []


def test_error_echoes_are_capped() -> None:
    long_id = "x" * 10_000
    err = ServiceError.not_found("ASSET_NOT_FOUND", f"asset {long_id} not found", metadata={"asset_id": long_id})
    status = err.to_status("viarte.test")
    trailer = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert len(status.details) <= 300 and status.details.endswith("…")
    assert len(trailer) < 1024
    info = error_details_pb2.ErrorInfo()
    status_pb2.Status.FromString(trailer).details[0].Unpack(info)
    assert info.metadata["asset_id"].startswith("xxx") and len(info.metadata["asset_id"]) <= 128
    flood = [FieldViolation(long_id, long_id)] * 1000
    many = ServiceError.invalid_argument("INVALID_ARGUMENT", "bad", violations=flood)
    assert len(dict(many.to_status("viarte.test").trailing_metadata)["grpc-status-details-bin"]) < 4096
