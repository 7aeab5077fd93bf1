"""Timelines from JSON or YAML files (the render service's ``viarte.render.v1.Timeline``).

Field names follow the proto (snake_case or the JSON camelCase); enums by name, with or without
their prefix (``"kind": "VIDEO"`` or ``"TRACK_KIND_VIDEO"``). A clip's ``asset_id`` may be
``"@path/to/file"``: the CLI uploads the file first and substitutes the new asset's id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from viarte.errors import ClientError
from viarte.render.v1 import timeline_pb2

__all__ = ["load_timeline", "parse_timeline", "timeline_to_dict"]

_ENUM_FIELDS = {
    "kind": ("TRACK_KIND_", "TRANSITION_KIND_"),
    "fit": ("FIT_",),
    "easing": ("EASING_",),
}


def _prefix_enums(node: Any, parent: str = "") -> Any:
    """Accepts short enum names ("VIDEO", "crossfade") by adding the proto prefix."""
    if isinstance(node, list):
        return [_prefix_enums(v, parent) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ENUM_FIELDS and isinstance(value, str):
            prefixes = _ENUM_FIELDS[key]
            if key == "kind":
                prefixes = ("TRANSITION_KIND_",) if parent in ("transition_in", "transitionIn", "transition") else ("TRACK_KIND_",)
            upper = value.upper()
            value = upper if upper.startswith(prefixes) else prefixes[0] + upper
        out[key] = _prefix_enums(value, key)
    return out


def parse_timeline(data: dict[str, Any]) -> timeline_pb2.Timeline:
    if not isinstance(data, dict):
        raise ClientError("a timeline file must hold a mapping with 'canvas' and 'tracks'")
    timeline = timeline_pb2.Timeline()
    try:
        json_format.ParseDict(_prefix_enums(data), timeline)
    except json_format.ParseError as exc:
        raise ClientError(f"invalid timeline: {exc}") from None
    return timeline


def load_timeline(path: str | Path, *, upload: Callable[[Path], str] | None = None) -> timeline_pb2.Timeline:
    """Reads a ``.json``/``.yaml``/``.yml`` timeline; ``upload`` resolves ``@file`` asset ids."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ClientError(f"cannot read {file}: {exc}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ClientError(f"{file} is not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {exc}") from None
    timeline = parse_timeline(data)
    for track in timeline.tracks:
        for clip in track.clips:
            if clip.asset_id.startswith("@"):
                if upload is None:
                    raise ClientError(f"clip {clip.id or '?'} names a file ({clip.asset_id}); upload it first")
                clip.asset_id = upload((file.parent / clip.asset_id[1:]).resolve())
    return timeline


def timeline_to_dict(timeline: timeline_pb2.Timeline) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(timeline, preserving_proto_field_name=True)
    return out
