"""Artifacts outside the model registry for the model pull (:mod:`studio_dev.models_pull`): single
files or zip packs (the face analysis pack, the Real-ESRGAN weights) from their publishers' release
URLs or hub files, checked against a pinned or first-recorded sha256."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from studio_dev.models_pull import (
    _CHUNK,
    ChecksumError,
    Hub,
    PullError,
    PullResult,
    _read_manifest,
    _write_manifest,
    git_blob_sha1,
    sha256_file,
)

__all__ = ["DEFAULT_ARTIFACTS", "Artifact", "load_artifacts", "pull_artifact"]

# ---------------------------------------------------------------------------------------------------
# Artifacts outside the registry (single files or zip packs)


@dataclass(frozen=True)
class Artifact:
    """One file (or zip pack, unpacked into ``target``) from a URL or a hub repository."""

    id: str
    target: Path
    url: str = ""
    hf_repo: str = ""
    hf_file: str = ""
    revision: str = "main"
    # Pin it: without one the first download's sha256 is recorded and enforced afterwards.
    sha256: str = ""
    unpack: str = ""  # "" or "zip"


# {face_models_dir}, {face_pack}, {render_model_dir} come from the inference and render configs.
# The face *swapper* (inswapper_128.onnx) has no redistributable source: place it yourself at
# <face_models_dir>/<face_swapper> or list it in --sources. Check each model's license before use.
DEFAULT_ARTIFACTS: tuple[Mapping[str, str], ...] = (
    {
        "id": "face-analysis-buffalo_l",
        "url": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        "unpack": "zip",
        "target": "{face_models_dir}/{face_pack}",
        "when": "{face_pack}=buffalo_l",
    },
    {
        "id": "realesrgan-x2plus",
        "url": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
        "target": "{render_model_dir}/RealESRGAN_x2plus.pth",
        "when": "{upscale_model}=realesrgan-x2plus",
    },
)


def load_artifacts(entries: Iterable[Mapping[str, Any]], values: Mapping[str, str]) -> list[Artifact]:
    """Artifacts with their ``{placeholders}`` filled in; entries whose ``when`` does not hold are left out."""
    artifacts: list[Artifact] = []
    names = {f.name for f in dataclasses.fields(Artifact)}
    for entry in entries:
        when = str(entry.get("when", "")).format(**values)
        if when and when.split("=", 1)[0] != when.split("=", 1)[1]:
            continue
        unknown = set(entry) - names - {"when"}
        if unknown:
            raise PullError(f"artifact {entry.get('id')}: unknown keys {sorted(unknown)}")
        fields = {k: v for k, v in entry.items() if k in names}
        fields["target"] = Path(str(entry["target"]).format(**values))
        artifact = Artifact(**fields)
        if bool(artifact.url) == bool(artifact.hf_repo and artifact.hf_file):
            raise PullError(f"artifact {artifact.id}: give either url or hf_repo + hf_file")
        artifacts.append(artifact)
    return artifacts


def _http_fetch(url: str, part: Path, timeout: float = 60.0) -> None:
    """Download ``url`` into ``part``, continuing an earlier partial download with a Range request."""
    import httpx

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with httpx.stream("GET", url, headers=headers, follow_redirects=True, timeout=timeout) as response:
        if response.status_code == 416:  # already complete
            return
        response.raise_for_status()
        mode = "ab" if offset and response.status_code == 206 else "wb"
        with part.open(mode) as out:
            for chunk in response.iter_bytes(_CHUNK):
                out.write(chunk)


def _hf_fetch(hub: Hub, artifact: Artifact) -> tuple[Path, str]:
    """Download one hub file into the cache; returns it and its publisher checksum (sha256 or git)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.hf_api import RepoFile

    (entry,) = [
        e
        for e in hub.api().get_paths_info(artifact.hf_repo, [artifact.hf_file], revision=artifact.revision)
        if isinstance(e, RepoFile)
    ]
    path = hf_hub_download(
        artifact.hf_repo,
        artifact.hf_file,
        revision=artifact.revision,
        cache_dir=hub.cache_dir,
        endpoint=hub.endpoint,
        token=hub.token,
    )
    expected = entry.lfs.sha256 if entry.lfs else ""
    if not expected and git_blob_sha1(Path(path)) != entry.blob_id:
        raise ChecksumError(f"{artifact.id}: {artifact.hf_file} does not match its git blob id")
    return Path(path), expected


def _unpack_zip(archive: Path, target: Path) -> None:
    """Extract into ``target`` (atomically replaced); a single top folder in the archive is dropped."""
    with zipfile.ZipFile(archive) as pack:
        names = [n for n in pack.namelist() if not n.endswith("/")]
        for name in names:
            if name.startswith("/") or ".." in PurePosixPath(name).parts:
                raise PullError(f"{archive.name}: unsafe member {name!r}")
        tops = {PurePosixPath(n).parts[0] for n in names}
        strip = len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        for name in names:
            parts = PurePosixPath(name).parts[1:] if strip else PurePosixPath(name).parts
            dest = staging.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with pack.open(name) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    staging.replace(target)


def _artifact_files(target: Path) -> dict[str, str]:
    """Relative path → sha256 of what an artifact installed (one file, or an unpacked folder)."""
    if target.is_file():
        return {target.name: sha256_file(target)}
    return {p.relative_to(target).as_posix(): sha256_file(p) for p in sorted(target.rglob("*")) if p.is_file()}


def _artifact_intact(target: Path, recorded: Mapping[str, str]) -> bool:
    return bool(recorded) and target.exists() and _artifact_files(target) == dict(recorded)


def pull_artifact(
    hub: Hub, artifact: Artifact, models_dir: Path, *, update: bool = False, verify: bool = False, dry_run: bool = False
) -> PullResult:
    known = _read_manifest(models_dir, artifact.id) or {}
    source = artifact.url or f"{artifact.hf_repo}/{artifact.hf_file}@{artifact.revision}"
    same_source = known.get("source") == source and (not artifact.sha256 or known.get("sha256") == artifact.sha256)
    if same_source and artifact.target.exists() and not update:
        if not verify:
            return PullResult(artifact.id, "up to date", str(artifact.target))
        if _artifact_intact(artifact.target, known.get("files", {})):
            return PullResult(artifact.id, "verified", str(artifact.target))
    if dry_run:
        return PullResult(artifact.id, "planned", f"{source} -> {artifact.target}")
    artifact.target.parent.mkdir(parents=True, exist_ok=True)
    if artifact.url:
        download = artifact.target.parent / f".{artifact.target.name}.part"
        _http_fetch(artifact.url, download)
        expected = artifact.sha256 or (known.get("sha256", "") if known.get("source") == source else "")
    else:
        download, expected = _hf_fetch(hub, artifact)
    actual = sha256_file(download)
    if expected and actual != expected:
        if artifact.url:
            download.unlink(missing_ok=True)
        raise ChecksumError(f"{artifact.id}: sha256 {actual}, expected {expected}")
    if artifact.unpack == "zip":
        _unpack_zip(download, artifact.target)
    else:
        tmp = artifact.target.with_name(f".{artifact.target.name}.tmp")
        shutil.copyfile(download, tmp)
        tmp.replace(artifact.target)
    if artifact.url:
        download.unlink()
    files = _artifact_files(artifact.target)
    _write_manifest(models_dir, artifact.id, {"id": artifact.id, "source": source, "sha256": actual, "files": files})
    note = "" if expected else f"; sha256 {actual} recorded on first download: pin it"
    return PullResult(artifact.id, "downloaded", f"{artifact.target}{note}", sum(
        p.stat().st_size for p in ([artifact.target] if artifact.target.is_file() else artifact.target.rglob("*")) if p.is_file()
    ))
