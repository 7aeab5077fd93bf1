"""The model pull job against a hub on 127.0.0.1 that speaks the hub's download protocol
(tests/deploy/fakehub.py): the real huggingface_hub client plans, downloads, resumes and the
pull verifies checksums; the pulled pipeline then loads with local_files_only."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import studio_dev.models_pull as pull
from services.inference.models.registry import load_registry
from studio_dev import model_artifacts
from studio_dev.model_artifacts import Artifact
from studio_dev.models_pull import ChecksumError, Hub, RemoteFile, select_files
from tests.deploy.fakehub import FakeHub, Repo

MODELSCOPE_REPO = "damo-vilab/text-to-video-ms-1.7b"  # the registry's real source, served locally


def _files(*paths: str) -> list[RemoteFile]:
    return [RemoteFile(p, 10, f"{i:040x}", "ab" * 32 if p.endswith((".safetensors", ".bin", ".pth")) else None)
            for i, p in enumerate(paths)]


def test_select_files_follows_from_pretrained() -> None:
    tree = _files(
        ".gitattributes", "README.md", "model_index.json", "samples/cat.gif",
        # original-format checkpoints at the root: never loaded by the diffusers pipeline
        "text2video_pytorch_model.pth", "open_clip_pytorch_model.bin",
        "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
        "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",  # no fp16 here: plain weights
        "text_encoder/config.json", "text_encoder/model.safetensors.index.json",
        "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
        "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model-00001-of-00002.fp16.safetensors", "text_encoder/model-00002-of-00002.fp16.safetensors",
        "tokenizer/merges.txt", "tokenizer/vocab.json", "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
        "safety_checker/model.safetensors",  # a folder the pipeline does not name
    )
    components = ["scheduler", "text_encoder", "tokenizer", "unet", "vae"]
    chosen = {f.path for f in select_files(tree, variant="fp16", components=components)}
    assert chosen == {
        "model_index.json",
        "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json", "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model-00001-of-00002.fp16.safetensors", "text_encoder/model-00002-of-00002.fp16.safetensors",
        "tokenizer/merges.txt", "tokenizer/vocab.json", "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
    }
    plain = {f.path for f in select_files(tree, components=components)}
    assert "unet/diffusion_pytorch_model.safetensors" in plain
    assert "text_encoder/model.safetensors.index.json" in plain
    assert not any(".fp16." in p for p in plain)
    only_bin = {f.path for f in select_files(_files("unet/config.json", "unet/diffusion_pytorch_model.bin"))}
    assert only_bin == {"unet/config.json", "unet/diffusion_pytorch_model.bin"}
    assert pull.pipeline_components(
        {"_class_name": "X", "_diffusers_version": "0.3", "unet": ["diffusers", "U"], "safety_checker": [None, None]}
    ) == ["unet"]


def _pipeline_repo(folder: Path, repo_id: str) -> Repo:
    """The tiny pipeline as a hub repository: plain weights, fp16-variant copies, and clutter."""
    extra: dict[str, bytes] = {
        "README.md": b"# tiny\n",
        "samples/demo.gif": b"GIF89a",
        "text2video_pytorch_model.pth": b"\0" * 4096,
    }
    for weights in folder.rglob("*.safetensors"):
        rel = weights.relative_to(folder).as_posix()
        extra[rel.replace(".safetensors", ".fp16.safetensors")] = weights.read_bytes()
    return Repo.from_folder(repo_id, folder, extra)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def modelscope_spec():  # type: ignore[no-untyped-def]
    spec = load_registry().get("modelscope-t2v-1.7b")
    assert spec is not None and spec.source == MODELSCOPE_REPO and spec.variant == "fp16"
    return spec


def test_pull_fetches_what_the_pipeline_loads_and_it_loads_offline(
    tiny_models, hub: FakeHub, tmp_path: Path, modelscope_spec  # type: ignore[no-untyped-def]
) -> None:
    repo = hub.add(_pipeline_repo(tiny_models.paths["tiny-modelscope"], MODELSCOPE_REPO))
    client = Hub(endpoint=hub.endpoint, cache_dir=tmp_path / "hub", max_workers=2)
    models_dir = tmp_path / "models"

    result = pull.pull_model(client, modelscope_spec, models_dir, log=lambda _: None)

    assert result.status == "downloaded"
    snapshot = tmp_path / "hub" / "models--damo-vilab--text-to-video-ms-1.7b" / "snapshots" / repo.commit
    got = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
    assert "model_index.json" in got and "unet/diffusion_pytorch_model.fp16.safetensors" in got
    assert not {p for p in got if p.endswith(".safetensors") and ".fp16." not in p}
    assert not {"README.md", "samples/demo.gif", "text2video_pytorch_model.pth"} & got
    assert not hub.gets("text2video_pytorch_model.pth")
    assert all((snapshot / p).read_bytes() == repo.files[p] for p in got)
    manifest = json.loads((models_dir / ".pull" / "modelscope-t2v-1.7b.json").read_text())
    assert manifest["commit"] == repo.commit and len(manifest["files"]) == len(got)

    # Second run: complete on disk → no network at all; --verify re-hashes without downloading.
    hub.log.clear()
    assert pull.pull_model(client, modelscope_spec, models_dir).status == "up to date"
    assert pull.pull_model(client, modelscope_spec, models_dir, verify=True).status == "verified"
    assert hub.log == []

    # The workers' way of loading it: offline, from the same cache, with the registry's variant.
    hub.stop()
    from diffusers import TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline.from_pretrained(
        MODELSCOPE_REPO, variant="fp16", cache_dir=tmp_path / "hub", local_files_only=True
    )
    assert type(pipe.unet).__name__ == "UNet3DConditionModel"


def test_damaged_download_fails_is_discarded_and_fetched_again(
    tiny_models, hub: FakeHub, tmp_path: Path, modelscope_spec  # type: ignore[no-untyped-def]
) -> None:
    repo = hub.add(_pipeline_repo(tiny_models.paths["tiny-modelscope"], MODELSCOPE_REPO))
    target = "vae/diffusion_pytorch_model.fp16.safetensors"
    good = repo.files[target]
    hub.tamper[target] = bytes(reversed(good))  # same size, other bytes
    client = Hub(endpoint=hub.endpoint, cache_dir=tmp_path / "hub", max_workers=2)
    with pytest.raises(ChecksumError, match=re.escape("vae/diffusion_pytorch_model.fp16.safetensors: sha256")):
        pull.pull_model(client, modelscope_spec, tmp_path / "models", log=lambda _: None)
    assert not (tmp_path / "models" / ".pull" / "modelscope-t2v-1.7b.json").exists()

    del hub.tamper[target]
    hub.log.clear()
    assert pull.pull_model(client, modelscope_spec, tmp_path / "models", log=lambda _: None).status == "downloaded"
    fetched = {p for m, p, _ in hub.log if m == "GET" and "/resolve/" in p}
    assert fetched == {f"/{MODELSCOPE_REPO}/resolve/{repo.commit}/{target}"}  # only the damaged file


def test_dry_run_plans_without_downloading(
    tiny_models, hub: FakeHub, tmp_path: Path, modelscope_spec  # type: ignore[no-untyped-def]
) -> None:
    repo = hub.add(_pipeline_repo(tiny_models.paths["tiny-modelscope"], MODELSCOPE_REPO))
    client = Hub(endpoint=hub.endpoint, cache_dir=tmp_path / "hub")
    result = pull.pull_model(client, modelscope_spec, tmp_path / "models", dry_run=True)
    assert result.status == "planned"
    expected = sum(len(v) for p, v in repo.files.items() if ".fp16." in p)
    assert result.bytes > expected  # weights plus configs and tokenizer files
    weights = [p for m, p, _ in hub.log if m == "GET" and p.endswith(".safetensors")]
    assert weights == []


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as pack:
        for name, data in members.items():
            pack.writestr(name, data)
    return buffer.getvalue()


def test_release_url_artifact_resumes_unpacks_and_is_pinned(hub: FakeHub, tmp_path: Path) -> None:
    archive = _zip({"buffalo_l/det_10g.onnx": b"d" * 5000, "buffalo_l/w600k_r50.onnx": b"r" * 7000})
    hub.plain["buffalo_l.zip"] = archive
    target = tmp_path / "models" / "faces" / "buffalo_l"
    artifact = Artifact(id="faces", target=target, url=f"{hub.endpoint}/files/buffalo_l.zip", unpack="zip",
                        sha256=hashlib.sha256(archive).hexdigest())
    part = target.parent / ".buffalo_l.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive[:1000])  # an earlier run stopped here

    result = model_artifacts.pull_artifact(Hub(), artifact, tmp_path / "models")

    assert result.status == "downloaded"
    assert hub.gets("buffalo_l.zip") == ["bytes=1000-"]
    assert sorted(p.name for p in target.iterdir()) == ["det_10g.onnx", "w600k_r50.onnx"]  # top folder dropped
    assert not part.exists()
    assert model_artifacts.pull_artifact(Hub(), artifact, tmp_path / "models").status == "up to date"
    assert model_artifacts.pull_artifact(Hub(), artifact, tmp_path / "models", verify=True).status == "verified"
    (target / "det_10g.onnx").write_bytes(b"x")  # damaged on disk → verify downloads it again
    assert model_artifacts.pull_artifact(Hub(), artifact, tmp_path / "models", verify=True).status == "downloaded"
    assert (target / "det_10g.onnx").read_bytes() == b"d" * 5000

    wrong = dataclasses.replace(artifact, id="faces-wrong", target=tmp_path / "other", sha256="0" * 64)
    with pytest.raises(ChecksumError):
        model_artifacts.pull_artifact(Hub(), wrong, tmp_path / "models")
    assert not (tmp_path / "other").exists()


def test_dropped_hub_download_resumes_with_a_range_request(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import constants

    size = 2 * constants.DOWNLOAD_CHUNK_SIZE + 12345  # the client keeps what it got in whole chunks
    weights = hashlib.sha256(b"seed").digest() * (size // 32) + b"\1" * (size % 32)
    repo = hub.add(Repo("viarte-test/big", {"weights.pth": weights}))
    hub.cut_after["weights.pth"] = constants.DOWNLOAD_CHUNK_SIZE + 777  # the connection drops mid-file
    artifact = Artifact(id="big", target=tmp_path / "big.pth", hf_repo=repo.repo_id, hf_file="weights.pth")
    result = model_artifacts.pull_artifact(Hub(endpoint=hub.endpoint, cache_dir=tmp_path / "hub"), artifact, tmp_path / "m")
    assert result.status == "downloaded"
    assert hub.gets("weights.pth") == ["", f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-"]
    assert artifact.target.read_bytes() == weights


def test_hub_file_artifact_and_default_artifacts(hub: FakeHub, tmp_path: Path) -> None:
    weights = b"esrgan" * 3000
    repo = hub.add(Repo("viarte-test/upscalers", {"RealESRGAN_x2plus.pth": weights, "README.md": b"hi"}))
    artifact = Artifact(id="upscaler", target=tmp_path / "upscale" / "RealESRGAN_x2plus.pth",
                        hf_repo=repo.repo_id, hf_file="RealESRGAN_x2plus.pth")
    client = Hub(endpoint=hub.endpoint, cache_dir=tmp_path / "hub")
    assert model_artifacts.pull_artifact(client, artifact, tmp_path / "models").status == "downloaded"
    assert artifact.target.read_bytes() == weights
    hub.tamper["RealESRGAN_x2plus.pth"] = b"E" * len(weights)
    other = dataclasses.replace(artifact, id="upscaler-2", target=tmp_path / "u2.pth")
    client2 = Hub(endpoint=hub.endpoint, cache_dir=tmp_path / "hub2")
    with pytest.raises(ChecksumError):
        model_artifacts.pull_artifact(client2, other, tmp_path / "models")

    values = {"face_models_dir": "/m/faces", "face_pack": "buffalo_l", "render_model_dir": "/m/up",
              "upscale_model": "realesrgan-x2plus"}
    defaults = {a.id: a for a in model_artifacts.load_artifacts(model_artifacts.DEFAULT_ARTIFACTS, values)}
    assert defaults["face-analysis-buffalo_l"].target == Path("/m/faces/buffalo_l")
    assert defaults["realesrgan-x2plus"].target == Path("/m/up/RealESRGAN_x2plus.pth")
    other_pack = model_artifacts.load_artifacts(model_artifacts.DEFAULT_ARTIFACTS, {**values, "face_pack": "antelopev2"})
    assert [a.id for a in other_pack] == ["realesrgan-x2plus"]


def test_command_pulls_the_registry_model(
    tiny_models, hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    hub.add(_pipeline_repo(tiny_models.paths["tiny-modelscope"], MODELSCOPE_REPO))
    args = ["--model", "modelscope-t2v-1.7b", "--endpoint", hub.endpoint, "--cache-dir", str(tmp_path / "hub"),
            "--models-dir", str(tmp_path / "models"), "--no-artifacts", "--max-workers", "2"]
    assert pull.main(args) == 0
    assert "modelscope-t2v-1.7b" in capsys.readouterr().out
    assert pull.main([*args, "--verify"]) == 0
    assert "verified" in capsys.readouterr().out
    assert pull.main(["--model", "no-such-model", "--models-dir", str(tmp_path / "models")]) == 2


def test_viarte_models_pull_runs_the_job_and_models_still_lists(
    tiny_models, hub: FakeHub, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from viarte.cli import main as viarte

    hub.add(_pipeline_repo(tiny_models.paths["tiny-modelscope"], MODELSCOPE_REPO))
    with pytest.raises(SystemExit) as pulled:
        viarte(["models", "pull", "--model", "modelscope-t2v-1.7b", "--endpoint", hub.endpoint, "--cache-dir",
                str(tmp_path / "hub"), "--models-dir", str(tmp_path / "models"), "--no-artifacts"])
    assert pulled.value.code == 0
    assert (tmp_path / "models" / ".pull" / "modelscope-t2v-1.7b.json").is_file()
    with socket.socket() as s:  # `viarte models` (the listing) still reaches the mesh: UNAVAILABLE → 7
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(SystemExit) as listed:
        viarte(["--endpoint", f"127.0.0.1:{closed}", "models"])
    assert listed.value.code == 7
