"""Captions from text assets, resolved at CreateTrainingJob (server side, no torch): sidecar
captions (`examples[i].caption_asset_id`, a text asset whose content is the caption) and a caption
file (`dataset.caption_file_asset_id`, JSON Lines or "<asset_id> <caption>" text) whose lines
become examples. The stored job then holds plain (asset_id, caption) examples, so the handler,
the lineage hash and a retry never read the text assets again.

The files are the caller's uploads, read by the server: everything is bounded (asset size checked
before the download, line length, examples, violations reported), decoded as strict UTF-8, and
every problem is a BadRequest field path, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from services.inference.reasons import Reason
from services.kit.errors import ServiceError, Violations
from services.kit.storage_client import StorageClient
from viarte.training.v1 import training_pb2 as T
from viarte.type.v1 import asset_pb2

__all__ = ["FILE", "MAX_CAPTION_FILE_BYTES", "MAX_FILE_VIOLATIONS", "parse_caption_file", "resolve_captions"]

MAX_CAPTION_FILE_BYTES = 1 << 20
MAX_SIDECAR_BYTES = 16 << 10
# A line holds one asset id and one caption (<= 2000 characters, JSON-escaped up to 6 bytes each).
MAX_LINE_CHARS = 16 << 10
# BadRequest travels in the status trailer: a file with a thousand bad lines reports the first few.
MAX_FILE_VIOLATIONS = 20
FILE = "parameters.dataset.caption_file"
FILE_ID = "parameters.dataset.caption_file_asset_id"
_FIELDS = ("asset_id", "caption")
# Control characters a caption never needs (tab, newline and carriage return are whitespace).
_CONTROLS = frozenset(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))


class _Duplicate(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _Duplicate(next(k for k in keys if keys.count(k) > 1))
    return dict(pairs)


def _shown(key: str) -> str:
    """A field name from the file, safe and short enough to echo in a field path."""
    clean = "".join(c if c.isalnum() or c in "_-" else "_" for c in key[:40])
    return clean or "_"


def parse_caption_file(text: str, v: Violations) -> list[tuple[int, str, str]]:
    """(line index, asset id, caption) of every example line; problems go to `v` as
    `parameters.dataset.caption_file.lines[i]…` (at most MAX_FILE_VIOLATIONS of them)."""
    lines = text.split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    jsonl = first.startswith("{")
    out: list[tuple[int, str, str]] = []
    problems = Violations()
    for i, raw in enumerate(lines):
        line = raw.removesuffix("\r")
        path = f"{FILE}.lines[{i}]"
        if not line.strip() or (not jsonl and line.lstrip().startswith("#")):
            continue
        if len(line) > MAX_LINE_CHARS:
            problems.add(path, f"line {i + 1} is longer than {MAX_LINE_CHARS} characters")
            continue
        if jsonl:
            entry = _json_line(line, i, path, problems)
            if entry is not None:
                out.append((i, *entry))
            continue
        parts = line.strip().split(maxsplit=1)
        out.append((i, parts[0], parts[1] if len(parts) > 1 else ""))
    for item in problems.items[:MAX_FILE_VIOLATIONS]:
        v.add(item.field, item.description)
    if len(problems) > MAX_FILE_VIOLATIONS:
        v.add(FILE, f"{len(problems) - MAX_FILE_VIOLATIONS} more problems in the caption file not listed")
    if not problems:
        v.check(bool(out), FILE, "the caption file lists no examples")
    return out


def _json_line(line: str, i: int, path: str, v: Violations) -> tuple[str, str] | None:
    try:
        data = json.loads(line, object_pairs_hook=_object)
    except _Duplicate as dup:
        v.add(f"{path}.{_shown(str(dup))}", f"line {i + 1}: field given twice")
        return None
    except (ValueError, RecursionError):
        v.add(path, f"line {i + 1} is not a JSON object (JSON Lines: one object per line)")
        return None
    if not isinstance(data, dict):
        v.add(path, f"line {i + 1} is not a JSON object (JSON Lines: one object per line)")
        return None
    bad = False
    for key in data:
        if key not in _FIELDS:
            v.add(f"{path}.{_shown(key)}", f"line {i + 1}: unknown field; allowed: {', '.join(_FIELDS)}")
            bad = True
    asset_id, caption = data.get("asset_id"), data.get("caption", "")
    if not isinstance(asset_id, str) or not asset_id:
        v.add(f"{path}.asset_id", f"line {i + 1}: a non-empty string is required")
        bad = True
    if not isinstance(caption, str):
        v.add(f"{path}.caption", f"line {i + 1}: must be a string")
        bad = True
    elif any(c in _CONTROLS for c in caption):  # "\u0000" escapes get past the file's own check
        v.add(f"{path}.caption", f"line {i + 1}: holds a control character")
        bad = True
    return None if bad else (str(asset_id), str(caption))


async def _read_text(store: StorageClient, owner: str, asset_id: str, field: str, limit: int,
                     v: Violations) -> str | None:
    """The UTF-8 content of the caller's text asset, or None with the reason added to `v`."""
    try:
        resolved = await store.resolve(owner, asset_id)
    except ServiceError as err:
        if err.reason != Reason.ASSET_NOT_FOUND:
            raise  # storage down: UNAVAILABLE, not the caller's fault
        v.add(field, "no such asset of yours")
        return None
    asset = resolved.asset
    if asset.kind != asset_pb2.ASSET_KIND_TEXT:
        v.add(field, f"must be a text asset (text/plain or application/jsonl), not {asset.content_type}")
        return None
    if asset.size_bytes > limit:  # refused before a byte is downloaded
        v.add(field, f"the file has {asset.size_bytes} bytes; at most {limit}")
        return None
    with tempfile.TemporaryDirectory(prefix="captions-") as folder:
        path = Path(folder) / "text"
        await store.download(resolved, path)
        data = (await asyncio.to_thread(path.read_bytes))[: limit + 1]
    if len(data) > limit:
        v.add(field, f"the file has more than {limit} bytes")
        return None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        v.add(field, f"not UTF-8 text (invalid byte at offset {exc.start})")
        return None
    bad = next((c for c in text if c in _CONTROLS), None)
    if bad is not None:
        v.add(field, f"holds the control character U+{ord(bad):04X} (at offset {text.index(bad)})")
        return None
    return text


async def resolve_captions(store: StorageClient, owner: str, params: T.TrainingParameters,
                           max_examples: int) -> list[str]:
    """Sidecar captions into `caption`, caption file lines appended as examples (in place).
    Returns each example's field path prefix for the checks that follow (a file line's problems
    point at its line). Raises INVALID_DATASET for unreadable or malformed text assets."""
    examples = params.dataset.examples
    prefixes = [f"parameters.dataset.examples[{i}]" for i in range(len(examples))]
    v = Violations()
    for i, example in enumerate(examples):
        if not example.caption_asset_id:
            continue
        field = f"{prefixes[i]}.caption_asset_id"
        if example.caption:
            v.add(field, "give caption or caption_asset_id, not both")
            continue
        text = await _read_text(store, owner, example.caption_asset_id, field, MAX_SIDECAR_BYTES, v)
        if text is not None:
            example.caption = " ".join(text.split())  # a sidecar's line breaks are not part of the caption
    file_id = params.dataset.caption_file_asset_id
    if file_id:
        text = await _read_text(store, owner, file_id, FILE_ID, MAX_CAPTION_FILE_BYTES, v)
        if text is not None:
            entries = parse_caption_file(text, v)
            if len(examples) + len(entries) > max_examples:
                v.add(FILE, f"{len(examples) + len(entries)} examples with the file's; at most {max_examples}")
            elif not v:
                for line, asset_id, caption in entries:
                    examples.add(asset_id=asset_id, caption=caption.strip())
                    prefixes.append(f"{FILE}.lines[{line}]")
    v.raise_if_any(Reason.INVALID_DATASET)
    return prefixes
