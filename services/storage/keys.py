"""Object keys, derived server-side only.

- `users/<user id>/<asset id>/<sanitised name>`: an asset's final object (and its thumbnail). Only the
  storage service writes here (server-side copy, thumbnails); no URL it hands out can write it.
- `staging/<user id>/<asset id>/<sanitised name>`: where uploads land (presigned PUT/parts, streams)
  until CompleteUpload / the stream end copies them to the final key. A presigned URL stays valid
  until it expires, so re-using it after completion only re-creates a staging object, which never
  becomes part of the asset and which the janitor reaps.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "MAX_NAME_CHARS",
    "PREFIXES",
    "asset_id_of",
    "asset_prefix",
    "asset_prefixes",
    "object_key",
    "sanitize_name",
    "staging_key",
    "staging_prefix",
    "thumbnail_key",
    "with_extension",
]

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


# What looks like a file extension (replaced when foreign); anything else ("v1.2") is kept.
_EXTENSION_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,4}")


def with_extension(name: str, extensions: tuple[str, ...]) -> str:
    """A sanitised `name` whose extension is one of `extensions` (of the sniffed content type; the
    first is the usual one): browsers and download dialogs go by the extension, so `x.html` holding
    a PNG is named `x.png` (a foreign extension is replaced, a non-extension suffix kept: `v1.2.png`)."""
    if not extensions or not name:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and ext.lower() in extensions:
        return name
    if dot and stem and _EXTENSION_LIKE.fullmatch(ext):
        name = stem
    suffix = "." + extensions[0]
    return (name[: MAX_NAME_CHARS - len(suffix)].rstrip(" ._") or "file") + suffix


FINAL, STAGING = "users", "staging"
PREFIXES = (f"{FINAL}/", f"{STAGING}/")


def asset_prefix(owner_id: str, asset_id: str) -> str:
    return f"{FINAL}/{owner_id}/{asset_id}/"


def staging_prefix(owner_id: str, asset_id: str) -> str:
    return f"{STAGING}/{owner_id}/{asset_id}/"


def asset_prefixes(owner_id: str, asset_id: str) -> tuple[str, str]:
    """Everything one asset may own in the bucket (removed together on deletion)."""
    return asset_prefix(owner_id, asset_id), staging_prefix(owner_id, asset_id)


def staging_key(owner_id: str, asset_id: str, name: str) -> str:
    return staging_prefix(owner_id, asset_id) + name


def asset_id_of(key: str) -> str | None:
    """The asset id in a final or staging key (None for anything else in the bucket)."""
    parts = key.split("/")
    return parts[2] if len(parts) >= 4 and parts[0] in (FINAL, STAGING) and parts[2] else None


def object_key(owner_id: str, asset_id: str, name: str) -> str:
    return asset_prefix(owner_id, asset_id) + name


def thumbnail_key(owner_id: str, asset_id: str) -> str:
    # A leading dot cannot come out of sanitize_name, so it never collides with the asset itself.
    return asset_prefix(owner_id, asset_id) + ".thumbnail.jpg"
