"""Download the configured real weights into the model volume ahead of time, checked against checksums.

    python -m studio_dev.models_pull [--model ID ...] [--update] [--verify] [--dry-run]
    viarte models pull ...                       (the same command through the CLI)

Services never download at request time (compose runs them with ``HF_HUB_OFFLINE=1``): this job
fills the volume first, and is a quick, offline no-op once everything is there.

What is pulled
- Every real (non-tiny) registry model the inference service serves (``VIARTE_INFERENCE_MODELS``,
  else the whole registry): exactly the files ``DiffusionPipeline.from_pretrained(repo,
  variant=...)`` reads — the components named in ``model_index.json`` with their configs and
  tokenizers, safetensors over pickles, the registry's variant (e.g. fp16) where the repository has
  it — into the Hugging Face cache (``HF_HOME``), from which the workers load with
  ``local_files_only``.
- Artifacts outside the registry (:mod:`studio_dev.model_artifacts`, or ``--sources FILE``): the
  face analysis pack and the Real-ESRGAN weights, from their publishers' release URLs or hub files.

How
1. Resolve the revision to a commit and list the repository tree (sizes, git blob ids, LFS sha256).
2. Plan the files (:func:`select_files`).
3. ``snapshot_download(allow_patterns=<the plan>)``: parallel and resumable (an interrupted blob
   continues with an HTTP Range request on the next try or run).
4. Verify every planned file against the hub's checksums (sha256 for LFS files, the git blob sha1
   otherwise). A mismatching blob is deleted, so the next run fetches it again, and the pull fails.
5. Write a manifest (``<models_dir>/.pull/<id>.json``: commit, files, sizes, checksums). With a
   manifest whose files are all present the model is skipped without any network call;
   ``--update`` looks for a newer commit, ``--verify`` re-hashes what is on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from services.inference.models.registry import DEFAULT_REGISTRY_PATH, ModelRegistry, ModelSpec, load_registry

__all__ = [
    "ChecksumError",
    "Hub",
    "PullError",
    "PullResult",
    "RemoteFile",
    "RepoPlan",
    "git_blob_sha1",
    "main",
    "pipeline_components",
    "plan_model",
    "pull_model",
    "select_files",
    "verify_files",
]

# Weight formats; for pipelines only PyTorch ones are ever loaded (safetensors, else pickled .bin).
_WEIGHT_SUFFIXES = (
    ".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".onnx_data", ".pb", ".gguf", ".ot",
)
_INDEX = re.compile(r"[^/]+\.(?P<fmt>safetensors|bin)\.index(?:\.(?P<variant>[^./]+))?\.json")
_SHARD = re.compile(r"-\d+-of-\d+$")
# Never needed to run a pipeline: documentation, samples, git metadata.
_SKIPPED = re.compile(r"(^|/)(\.gitattributes|README\.md|LICENSE(\.\w+)?)$|\.(md|png|jpe?g|gif|webp|mp4)$", re.I)
_CHUNK = 1 << 20
MANIFEST_DIR = ".pull"


class PullError(RuntimeError):
    """A model or artifact could not be planned, downloaded or verified."""


class ChecksumError(PullError):
    """Downloaded bytes differ from the publisher's checksum."""


# ---------------------------------------------------------------------------------------------------
# Planning (pure)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository at a commit, with the hub's checksum of its content."""

    path: str
    size: int
    blob_id: str
    sha256: str | None = None  # set for LFS files

    @property
    def checksum(self) -> tuple[str, str]:
        return ("sha256", self.sha256) if self.sha256 else ("git-sha1", self.blob_id)


@dataclass(frozen=True)
class RepoPlan:
    model_id: str
    repo_id: str
    revision: str  # what was asked for ("main", a tag or a commit)
    commit: str
    variant: str
    files: tuple[RemoteFile, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def pipeline_components(model_index: Mapping[str, Any]) -> list[str]:
    """Sub-folders a diffusers pipeline loads: entries ``name: [library, class]`` that are set."""
    return sorted(
        name
        for name, value in model_index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and all(value)
    )


def _weight(name: str) -> tuple[str, str] | None:
    """(format, variant) of a weight or weight-index file name, None for anything else."""
    index = _INDEX.fullmatch(name)
    if index:
        return index["fmt"], index["variant"] or ""
    for suffix in _WEIGHT_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            variant = base.split(".", 1)[1] if "." in base else ""
            return suffix[1:], _SHARD.sub("", variant)
    return None


def select_files(
    files: Iterable[RemoteFile], *, variant: str = "", components: Collection[str] | None = None
) -> list[RemoteFile]:
    """The files ``from_pretrained`` reads from a pipeline repository.

    Root files and the folders named in ``components`` are considered (``None``: every folder).
    In each folder: all config/tokenizer files, and one set of weights — safetensors when the
    folder has any, else .bin; the ``variant`` files when the folder has them, else the plain ones.
    """
    by_dir: dict[str, list[RemoteFile]] = {}
    for f in files:
        by_dir.setdefault(str(PurePosixPath(f.path).parent), []).append(f)
    chosen: list[RemoteFile] = []
    for folder, entries in sorted(by_dir.items()):
        top = folder.split("/", 1)[0]
        if folder != "." and components is not None and top not in components:
            continue
        weights = [(f, w) for f in entries if (w := _weight(PurePosixPath(f.path).name)) is not None]
        chosen += [f for f in entries if _weight(PurePosixPath(f.path).name) is None and not _SKIPPED.search(f.path)]
        if folder == "." and components is not None:
            continue  # a pipeline's root weights are original-format checkpoints it never loads
        formats = {w[0] for _, w in weights}
        fmt = "safetensors" if "safetensors" in formats else "bin" if "bin" in formats else None
        if fmt is None:
            continue
        candidates = [(f, w) for f, w in weights if w[0] == fmt]
        wanted = variant if variant and any(w[1] == variant for _, w in candidates) else ""
        picked = [f for f, w in candidates if w[1] == wanted]
        if not picked:
            raise PullError(f"{folder}: no {fmt} weights without a variant and none for {variant or 'the default'}")
        chosen += picked
    return sorted(chosen, key=lambda f: f.path)


# ---------------------------------------------------------------------------------------------------
# Checksums


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's content (what the hub reports for non-LFS files)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _actual(path: Path, algorithm: str) -> str:
    return sha256_file(path) if algorithm == "sha256" else git_blob_sha1(path)


def verify_files(root: Path, files: Iterable[RemoteFile]) -> list[str]:
    """Problems of ``files`` under ``root`` (missing, wrong size, wrong checksum); [] when all match."""
    problems: list[str] = []
    for f in files:
        path = root / f.path
        if not path.is_file():
            problems.append(f"{f.path}: missing")
            continue
        if path.stat().st_size != f.size:
            problems.append(f"{f.path}: {path.stat().st_size} bytes, expected {f.size}")
            continue
        algorithm, expected = f.checksum
        actual = _actual(path, algorithm)
        if actual != expected:
            problems.append(f"{f.path}: {algorithm} {actual}, expected {expected}")
    return problems


# ---------------------------------------------------------------------------------------------------
# The hub


@dataclass(frozen=True)
class Hub:
    """Where and how to reach the Hugging Face hub (or a mirror speaking its protocol)."""

    endpoint: str | None = None  # None = huggingface_hub's default (HF_ENDPOINT or huggingface.co)
    token: str | bool | None = None  # None = huggingface_hub's default (HF_TOKEN / HF_TOKEN_PATH)
    cache_dir: Path | None = None  # None = huggingface_hub's default (HF_HOME/hub), where workers load
    max_workers: int = 8

    def api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token)

    def resolve(self, repo_id: str, revision: str) -> str:
        info = self.api().model_info(repo_id, revision=revision)
        if not info.sha:
            raise PullError(f"{repo_id}@{revision}: the hub returned no commit")
        return str(info.sha)

    def tree(self, repo_id: str, commit: str) -> list[RemoteFile]:
        from huggingface_hub.hf_api import RepoFile

        return [
            RemoteFile(e.path, int(e.size), str(e.blob_id), e.lfs.sha256 if e.lfs else None)
            for e in self.api().list_repo_tree(repo_id, recursive=True, revision=commit)
            if isinstance(e, RepoFile)
        ]

    def read_json(self, repo_id: str, commit: str, filename: str) -> Any:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(
            repo_id, filename, revision=commit, cache_dir=self.cache_dir, endpoint=self.endpoint, token=self.token
        )
        return json.loads(Path(path).read_text())

    def storage_folder(self, repo_id: str) -> Path:
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name

        cache = Path(self.cache_dir) if self.cache_dir is not None else Path(constants.HF_HUB_CACHE)
        return cache / str(repo_folder_name(repo_id=repo_id, repo_type="model"))


def plan_model(hub: Hub, spec: ModelSpec, revision: str = "main", commit: str | None = None) -> RepoPlan:
    commit = commit or hub.resolve(spec.source, revision)
    tree = hub.tree(spec.source, commit)
    if not any(f.path == "model_index.json" for f in tree):
        raise PullError(f"{spec.id}: {spec.source} has no model_index.json (not a diffusers pipeline)")
    components = pipeline_components(hub.read_json(spec.source, commit, "model_index.json"))
    files = select_files(tree, variant=spec.variant, components=components)
    return RepoPlan(spec.id, spec.source, revision, commit, spec.variant, tuple(files))


# ---------------------------------------------------------------------------------------------------
# Manifests


def _manifest_path(models_dir: Path, item_id: str) -> Path:
    return models_dir / MANIFEST_DIR / f"{item_id}.json"


def _write_manifest(models_dir: Path, item_id: str, data: Mapping[str, Any]) -> Path:
    path = _manifest_path(models_dir, item_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**data, "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2))
    tmp.replace(path)
    return path


def _read_manifest(models_dir: Path, item_id: str) -> dict[str, Any] | None:
    path = _manifest_path(models_dir, item_id)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _plan_from_manifest(data: Mapping[str, Any]) -> RepoPlan:
    files = tuple(RemoteFile(**f) for f in data["files"])
    return RepoPlan(data["model"], data["repo"], data["revision"], data["commit"], data["variant"], files)


# ---------------------------------------------------------------------------------------------------
# Pulling registry models


@dataclass(frozen=True)
class PullResult:
    item_id: str
    status: str  # "downloaded", "up to date", "verified", "planned", "failed"
    detail: str = ""
    bytes: int = 0


def _snapshot(hub: Hub, plan: RepoPlan) -> Path:
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        plan.repo_id,
        revision=plan.revision,
        cache_dir=hub.cache_dir,
        endpoint=hub.endpoint,
        token=hub.token,
        allow_patterns=[glob.escape(f.path) for f in plan.files],
        max_workers=hub.max_workers,
    )
    return Path(folder)


def _discard_bad_blobs(snapshot: Path, problems: Iterable[str]) -> None:
    """Remove the blobs behind failing files so that the next run downloads them again."""
    for problem in problems:
        link = snapshot / problem.split(":", 1)[0]
        with contextlib.suppress(OSError):
            if link.is_symlink():
                link.resolve().unlink(missing_ok=True)
            link.unlink(missing_ok=True)


def _up_to_date(hub: Hub, plan: RepoPlan) -> bool:
    """Offline check: the manifest's commit is what the ref names and every file has its size."""
    folder = hub.storage_folder(plan.repo_id)
    ref = folder / "refs" / plan.revision
    if plan.revision != plan.commit and (not ref.is_file() or ref.read_text().strip() != plan.commit):
        return False
    snapshot = folder / "snapshots" / plan.commit
    return all((snapshot / f.path).is_file() and (snapshot / f.path).stat().st_size == f.size for f in plan.files)


def pull_model(
    hub: Hub,
    spec: ModelSpec,
    models_dir: Path,
    *,
    revision: str = "main",
    update: bool = False,
    verify: bool = False,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> PullResult:
    """Plan, download, verify and record one registry model (steps 1-5 of the module docstring)."""
    if spec.tiny:
        return PullResult(spec.id, "up to date", "random weights, built locally")
    known = _read_manifest(models_dir, spec.id)
    if known and known.get("repo") == spec.source and known.get("variant") == spec.variant and not update:
        plan = _plan_from_manifest(known)
        if _up_to_date(hub, plan):
            if not verify:
                return PullResult(spec.id, "up to date", f"{plan.repo_id}@{plan.commit[:12]}", plan.total_bytes)
            snapshot = hub.storage_folder(plan.repo_id) / "snapshots" / plan.commit
            problems = verify_files(snapshot, plan.files)
            if not problems:
                return PullResult(spec.id, "verified", f"{len(plan.files)} files", plan.total_bytes)
            _discard_bad_blobs(snapshot, problems)
            log(f"{spec.id}: {len(problems)} damaged file(s), downloading again")
    plan = plan_model(hub, spec, revision)
    if dry_run:
        return PullResult(spec.id, "planned", f"{len(plan.files)} files from {plan.repo_id}@{plan.commit[:12]}", plan.total_bytes)
    log(f"{spec.id}: {len(plan.files)} files, {plan.total_bytes / 1024**3:.2f} GiB from {plan.repo_id}@{plan.commit[:12]}")
    snapshot = _snapshot(hub, plan)
    if snapshot.name != plan.commit:  # the branch moved between planning and downloading
        plan = plan_model(hub, spec, revision, commit=snapshot.name)
        snapshot = _snapshot(hub, plan)
    problems = verify_files(snapshot, plan.files)
    if problems:
        _discard_bad_blobs(snapshot, problems)
        raise ChecksumError(f"{spec.id}: " + "; ".join(problems))
    _write_manifest(
        models_dir,
        spec.id,
        {
            "model": spec.id,
            "repo": plan.repo_id,
            "revision": plan.revision,
            "commit": plan.commit,
            "variant": plan.variant,
            "files": [dataclasses.asdict(f) for f in plan.files],
        },
    )
    return PullResult(spec.id, "downloaded", f"{plan.repo_id}@{plan.commit[:12]}", plan.total_bytes)


# ---------------------------------------------------------------------------------------------------
# Command line


def _selected_models(registry: ModelRegistry, requested: Sequence[str], configured: Sequence[str]) -> list[ModelSpec]:
    ids = list(requested or configured or [m.id for m in registry if not m.tiny])
    unknown = [i for i in ids if registry.get(i) is None]
    if unknown:
        raise PullError(f"unknown model ids {unknown}; the registry has {[m.id for m in registry]}")
    return [spec for i in ids if (spec := registry.get(i)) is not None]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m studio_dev.models_pull", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--model", action="append", default=[], help="a registry id (repeatable); default: the served models")
    parser.add_argument("--revision", default="main", help="branch, tag or commit to pull (default main)")
    parser.add_argument("--update", action="store_true", help="look for a newer commit even when complete")
    parser.add_argument("--verify", action="store_true", help="re-hash what is on disk against the checksums")
    parser.add_argument("--dry-run", action="store_true", help="plan and print, download nothing")
    parser.add_argument("--no-artifacts", action="store_true", help="registry models only")
    parser.add_argument("--sources", type=Path, help="YAML list of artifacts replacing the defaults")
    parser.add_argument("--endpoint", help="hub endpoint or mirror (default: huggingface_hub's)")
    parser.add_argument("--cache-dir", type=Path, help="hub cache (default: HF_HOME/hub, where workers load)")
    parser.add_argument("--models-dir", type=Path, help="default: the inference config's models_dir")
    parser.add_argument("--max-workers", type=int, default=8)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import yaml

    from services.inference.config import InferenceConfig
    from services.kit.config import load_config
    from services.render.config import RenderConfig
    from studio_dev.model_artifacts import (  # builds on this module
        DEFAULT_ARTIFACTS,
        load_artifacts,
        pull_artifact,
    )

    args = _parser().parse_args(argv)
    inference = load_config(InferenceConfig)
    render = load_config(RenderConfig)
    models_dir = args.models_dir or inference.models_path
    hub = Hub(endpoint=args.endpoint, cache_dir=args.cache_dir, max_workers=args.max_workers)
    registry = load_registry(inference.registry_path or DEFAULT_REGISTRY_PATH)
    results: list[PullResult] = []
    try:
        specs = _selected_models(registry, args.model, inference.models)
    except PullError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for spec in specs:
        try:
            results.append(
                pull_model(hub, spec, models_dir, revision=args.revision, update=args.update,
                           verify=args.verify, dry_run=args.dry_run)
            )
        except Exception as exc:  # report every model, then fail
            results.append(PullResult(spec.id, "failed", f"{type(exc).__name__}: {exc}"))
    if not args.no_artifacts and not args.model:
        face_dir = inference.face_models_dir or str(models_dir / "faces")
        values = {
            "face_models_dir": face_dir,
            "face_pack": inference.face_pack,
            "render_model_dir": render.model_dir,
            "upscale_model": render.upscale_model,
        }
        entries = yaml.safe_load(args.sources.read_text()) if args.sources else DEFAULT_ARTIFACTS
        for artifact in load_artifacts(entries, values):
            try:
                results.append(
                    pull_artifact(hub, artifact, models_dir, update=args.update, verify=args.verify, dry_run=args.dry_run)
                )
            except Exception as exc:
                results.append(PullResult(artifact.id, "failed", f"{type(exc).__name__}: {exc}"))
        swapper = Path(face_dir) / inference.face_swapper
        if not swapper.exists():
            print(f"note: face swapper weights not found at {swapper}; face swap stays unavailable until you place them")
    for r in results:
        print(f"{r.item_id:32} {r.status:11} {r.bytes / 1024**3:8.2f} GiB  {r.detail}")
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
