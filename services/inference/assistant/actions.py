"""The assistant's tools: JSON schemas sent to the model, and validation of its tool calls.

A tool call is untrusted input, exactly like a request from a client: its arguments are parsed
against a strict schema (unknown fields, wrong types refused), turned into the proto contract, and
checked against the user's project (tracks, clips, assets they own) and the generation limits.
Valid calls become `ProposedAction`s that the client shows and applies only after the user
confirms; the server never executes them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from services.kit.errors import ServiceError
from viarte.inference.v1 import assistant_pb2, generation_pb2
from viarte.render.v1 import render_pb2, timeline_pb2

__all__ = ["TOOLS", "GenerationValidator", "RejectedAction", "parse_action"]

GenerationValidator = Callable[[generation_pb2.GenerationParameters], None]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
_TRANSITIONS = {
    "crossfade": timeline_pb2.TRANSITION_KIND_CROSSFADE,
    "fade_black": timeline_pb2.TRANSITION_KIND_FADE_BLACK,
    "wipe_left": timeline_pb2.TRANSITION_KIND_WIPE_LEFT,
    "wipe_right": timeline_pb2.TRANSITION_KIND_WIPE_RIGHT,
    "wipe_up": timeline_pb2.TRANSITION_KIND_WIPE_UP,
    "wipe_down": timeline_pb2.TRANSITION_KIND_WIPE_DOWN,
    "slide_left": timeline_pb2.TRANSITION_KIND_SLIDE_LEFT,
    "slide_right": timeline_pb2.TRANSITION_KIND_SLIDE_RIGHT,
    "slide_up": timeline_pb2.TRANSITION_KIND_SLIDE_UP,
    "slide_down": timeline_pb2.TRANSITION_KIND_SLIDE_DOWN,
}
_TASKS = {"text_to_video": generation_pb2.TASK_TEXT_TO_VIDEO, "image_to_video": generation_pb2.TASK_IMAGE_TO_VIDEO}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(min_length=1, max_length=200, description="One line for the confirmation dialog.")


class StartGeneration(_Args):
    """Start a video generation job."""

    model: str = Field(min_length=1, max_length=100, description="Model id from the list in the context.")
    task: Literal["text_to_video", "image_to_video"] = "text_to_video"
    prompt: str = Field(min_length=1, max_length=4000)
    negative_prompt: str = Field(default="", max_length=4000)
    image_asset_id: str = Field(default="", description="Image asset id (image_to_video only).")
    width: int = Field(default=0, ge=0, le=4096)
    height: int = Field(default=0, ge=0, le=4096)
    num_frames: int = Field(default=0, ge=0, le=1000)
    fps: int = Field(default=0, ge=0, le=120)
    num_inference_steps: int = Field(default=0, ge=0, le=1000)
    seed: int | None = Field(default=None, ge=0)


class AddClip(_Args):
    """Add a video, image or audio asset as a clip on a track."""

    track_index: int = Field(ge=0)
    asset_id: str = Field(min_length=1)
    start_seconds: float = Field(ge=0)
    source_start_seconds: float = Field(default=0.0, ge=0)
    source_end_seconds: float = Field(default=0.0, ge=0, description="0 = the end of the source.")
    duration_seconds: float = Field(default=0.0, ge=0, description="Images only.")


class AddText(_Args):
    """Add a text clip on a text track."""

    track_index: int = Field(ge=0)
    text: str = Field(min_length=1, max_length=500)
    start_seconds: float = Field(ge=0)
    duration_seconds: float = Field(gt=0, le=3600)
    font_size: float = Field(default=48.0, gt=0, le=1000)
    color: str = Field(default="#ffffff")


class ApplyTransition(_Args):
    """Set the transition into a clip from the previous clip on its track."""

    track_index: int = Field(ge=0)
    clip_id: str = Field(min_length=1)
    kind: Literal[
        "crossfade", "fade_black", "wipe_left", "wipe_right", "wipe_up", "wipe_down",
        "slide_left", "slide_right", "slide_up", "slide_down",
    ]
    duration_seconds: float = Field(gt=0, le=10)


class ProposeEdit(_Args):
    """Cut the project's video assets to a music asset: the render service proposes an edit with the
    cuts on the music's beats (shots trimmed at scene changes, transitions chosen from the shots,
    optionally colour-matched), which replaces the project's timeline when the user applies it."""

    clip_asset_ids: list[str] = Field(min_length=1, max_length=50, description="Video asset ids, in the order to use them.")
    music_asset_id: str = Field(min_length=1, description="An audio (or video with sound) asset id.")
    duration_seconds: float = Field(default=0.0, ge=0, le=3600, description="0 = as long as the music or the shots last.")
    min_shot_seconds: float = Field(default=1.0, ge=0.2, le=10)
    transitions: bool = Field(default=True, description="Slides that follow pans, dissolves between look-alike shots.")
    match_colors: bool = Field(default=False, description="Grade every shot toward the first one (LUTs).")


_MODELS: dict[str, type[_Args]] = {
    "start_generation": StartGeneration,
    "add_clip": AddClip,
    "add_text": AddText,
    "apply_transition": ApplyTransition,
    "propose_edit": ProposeEdit,
}


def _tool(name: str, model: type[_Args]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return {"type": "function", "function": {"name": name, "description": model.__doc__ or name, "parameters": schema}}


TOOLS: list[dict[str, Any]] = [_tool(name, model) for name, model in _MODELS.items()]


@dataclass(frozen=True)
class RejectedAction(Exception):
    """A tool call that is not a valid request; `reason` says why (shown to the user)."""

    name: str
    reason: str


def parse_action(
    call_id: str,
    name: str,
    arguments: str,
    project: assistant_pb2.ProjectContext,
    validate_generation: GenerationValidator | None = None,
) -> assistant_pb2.ProposedAction:
    """The `ProposedAction` of one tool call; `RejectedAction` when it breaks the contract."""
    model = _MODELS.get(name)
    if model is None:
        raise RejectedAction(name, "unknown action")
    try:
        args = model.model_validate(json.loads(arguments or "{}"))
    except (json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise RejectedAction(name, f"invalid arguments: {_short(exc)}") from None
    action = assistant_pb2.ProposedAction(id=call_id or uuid.uuid4().hex, summary=args.summary)
    if isinstance(args, StartGeneration):
        action.start_generation.CopyFrom(_generation(args, project, validate_generation))
    elif isinstance(args, AddClip):
        action.add_clip.CopyFrom(_add_clip(args, project))
    elif isinstance(args, AddText):
        action.add_text.CopyFrom(_add_text(args, project))
    elif isinstance(args, ApplyTransition):
        action.apply_transition.CopyFrom(_transition(args, project))
    elif isinstance(args, ProposeEdit):
        action.propose_edit.CopyFrom(_propose_edit(args, project))
    return action


def _short(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    return str(exc)[:200]


def _generation(
    args: StartGeneration, project: assistant_pb2.ProjectContext, validate: GenerationValidator | None
) -> generation_pb2.GenerationParameters:
    params = generation_pb2.GenerationParameters(
        model=args.model,
        task=_TASKS[args.task],
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        image_asset_id=args.image_asset_id,
        width=args.width,
        height=args.height,
        num_frames=args.num_frames,
        fps=args.fps,
        num_inference_steps=args.num_inference_steps,
    )
    if args.seed is not None:
        params.seed = args.seed
    if args.image_asset_id and args.image_asset_id not in project.asset_names:
        raise RejectedAction("start_generation", "image_asset_id is not an asset of this project")
    if validate is not None:
        try:
            validate(params)
        except ServiceError as exc:
            details = "; ".join(f"{v.field}: {v.description}" for v in exc.field_violations)
            raise RejectedAction("start_generation", f"{exc.reason}: {details or exc.message}") from None
    return params


def _track(project: assistant_pb2.ProjectContext, index: int, kinds: set[int], name: str) -> timeline_pb2.Track:
    tracks = project.timeline.tracks
    if index >= len(tracks):
        raise RejectedAction(name, f"track_index {index} is out of range ({len(tracks)} tracks)")
    track: timeline_pb2.Track = tracks[index]
    if track.kind not in kinds:
        raise RejectedAction(name, f"track {index} is a {timeline_pb2.TrackKind.Name(track.kind)} track")
    return track


def _add_clip(args: AddClip, project: assistant_pb2.ProjectContext) -> assistant_pb2.AddClipAction:
    _track(project, args.track_index, {timeline_pb2.TRACK_KIND_VIDEO, timeline_pb2.TRACK_KIND_AUDIO}, "add_clip")
    # ProjectContext.asset_names maps asset id -> name: only the user's own project assets qualify.
    if args.asset_id not in project.asset_names:
        raise RejectedAction("add_clip", "asset_id is not an asset of this project")
    if args.source_end_seconds and args.source_end_seconds <= args.source_start_seconds:
        raise RejectedAction("add_clip", "source_end_seconds must be after source_start_seconds")
    clip = timeline_pb2.Clip(
        id=f"clip-{uuid.uuid4().hex[:8]}",
        asset_id=args.asset_id,
        start_seconds=args.start_seconds,
        source_start_seconds=args.source_start_seconds,
        source_end_seconds=args.source_end_seconds,
        duration_seconds=args.duration_seconds,
    )
    return assistant_pb2.AddClipAction(track_index=args.track_index, clip=clip)


def _add_text(args: AddText, project: assistant_pb2.ProjectContext) -> assistant_pb2.AddClipAction:
    _track(project, args.track_index, {timeline_pb2.TRACK_KIND_TEXT}, "add_text")
    if not _COLOR.match(args.color):
        raise RejectedAction("add_text", "color must be #rrggbb or #rrggbbaa")
    clip = timeline_pb2.Clip(
        id=f"text-{uuid.uuid4().hex[:8]}",
        start_seconds=args.start_seconds,
        duration_seconds=args.duration_seconds,
        text=timeline_pb2.TextStyle(text=args.text, font_size=args.font_size, color=args.color),
    )
    return assistant_pb2.AddClipAction(track_index=args.track_index, clip=clip)


def _transition(args: ApplyTransition, project: assistant_pb2.ProjectContext) -> assistant_pb2.ApplyTransitionAction:
    track = _track(project, args.track_index, {timeline_pb2.TRACK_KIND_VIDEO, timeline_pb2.TRACK_KIND_TEXT}, "apply_transition")
    ids = [c.id for c in track.clips]
    if args.clip_id not in ids:
        raise RejectedAction("apply_transition", f"no clip {args.clip_id!r} on track {args.track_index}")
    if ids.index(args.clip_id) == 0:
        raise RejectedAction("apply_transition", "the first clip of a track has no previous clip to transition from")
    return assistant_pb2.ApplyTransitionAction(
        track_index=args.track_index,
        clip_id=args.clip_id,
        transition=timeline_pb2.Transition(kind=_TRANSITIONS[args.kind], duration_seconds=args.duration_seconds),
    )


def _propose_edit(args: ProposeEdit, project: assistant_pb2.ProjectContext) -> assistant_pb2.ProposeEditAction:
    for asset_id in [*args.clip_asset_ids, args.music_asset_id]:
        if asset_id not in project.asset_names:
            raise RejectedAction("propose_edit", f"{asset_id[:40]!r} is not an asset of this project")
    request = render_pb2.ProposeEditRequest(
        clip_asset_ids=args.clip_asset_ids,
        music_asset_id=args.music_asset_id,
        duration_seconds=args.duration_seconds,
        min_shot_seconds=args.min_shot_seconds,
        transitions=args.transitions,
        match_colors=args.match_colors,
    )
    # The project's canvas (size, rate, background), so the proposal fits the project it replaces.
    if project.timeline.HasField("canvas"):
        c = project.timeline.canvas
        request.canvas.CopyFrom(timeline_pb2.Canvas(width=c.width, height=c.height, fps=c.fps, background_color=c.background_color))
    return assistant_pb2.ProposeEditAction(request=request)
