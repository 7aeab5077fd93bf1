"""Object keys, derived server-side only: `users/<user id>/<asset id>/<sanitised name>`."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_NAME_CHARS", "asset_prefix", "object_key", "sanitize_name", "thumbnail_key"]

MAX_NAME_CHARS = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+\-]+")
_SPACES = re.compile(r"\s+")


def sanitize_name(name: str) -> str:
    """A safe file name: the last path component, NFKC-normalised, no control or shell-ish characters,
    no leading dots (no hidden files, no `..`), at most MAX_NAME_CHARS (extension kept).
    Returns "" when nothing usable is left."""
    name = unicodedata.normalize("NFKC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name)
    name = _SPACES.sub(" ", name).strip(" ._")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip(" ._") + "." + ext
        else:
            name = name[:MAX_NAME_CHARS].rstrip(" ._")
    return name


def asset_prefix(owner_id: str, asset_id: str) -> str:
    return f"users/{owner_id}/{asset_id}/"


def object_key(owner_id: str, asset_id: str, name: str) -> str:
    return asset_prefix(owner_id, asset_id) + name


def thumbnail_key(owner_id: str, asset_id: str) -> str:
    # A leading dot cannot come out of sanitize_name, so it never collides with the asset itself.
    return asset_prefix(owner_id, asset_id) + ".thumbnail.jpg"
