"""The README's main command, ``viarte demo``, as a subprocess; its MP4 is checked with ffprobe.

It runs on the session mesh (``--state-dir``): the demo reuses a ready mesh and leaves it running,
exactly as it does for a user who ran ``viarte up`` first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio_dev.demo import OUTPUT_NAME, ffprobe_summary
from tests.fixtures.mesh import RunningMesh

pytestmark = pytest.mark.e2e


def test_demo_produces_the_upscaled_mp4(mesh: RunningMesh, tmp_path: Path) -> None:
    mesh.require("auth", "storage", "inference", "render")
    result = subprocess.run(
        [sys.executable, "-m", "viarte", "--state-dir", str(mesh.state_dir), "--config", str(tmp_path / "cli.json"),
         "--json", "demo", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    mp4 = tmp_path / OUTPUT_NAME
    assert summary["output"] == str(mp4) and summary["skipped"] == []
    assert set(summary["jobs"]) == {"i2v", "t2v", "render", "upscale"}
    # The steps were printed with their progress (on stderr under --json).
    for text in ("Image-to-video with face swap", "Text-to-video", "denoising", "face swap", "rendering", "upscaling"):
        assert text in result.stderr
    assert summary["editor_url"].startswith("http://127.0.0.1:")

    probe = ffprobe_summary(mp4)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (512, 512)  # 256 canvas, x2
    assert audio["codec_name"] == "aac"
    # i2v (13 frames) and t2v (16 frames) at 8 fps, overlapping by the 0.5 s crossfade.
    assert 2.5 < float(probe["format"]["duration"]) < 4.0
    assert summary["ffprobe"]["streams"] == probe["streams"]
    _check_metering(mesh, tmp_path, summary["jobs"])
    # The demo did not stop a mesh it did not start.
    assert mesh.services >= {"auth", "storage", "inference", "render"}
    from studio_dev.mesh import status

    state, _rows = status(mesh.state_dir)
    assert state is not None and state.state == "ready"


def _check_metering(mesh: RunningMesh, tmp_path: Path, jobs: dict[str, str]) -> None:
    """Issue 16: every job the demo ran (generation with face swap, generation, render, upscale)
    has one usage record, and its job shows the same credits as final cost, above zero."""
    mesh.require("account")

    def cli(*args: str) -> dict:  # type: ignore[type-arg]
        done = subprocess.run(
            [sys.executable, "-m", "viarte", "--state-dir", str(mesh.state_dir), "--config", str(tmp_path / "cli.json"),
             "--json", *args], capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    deadline = time.monotonic() + 60  # outcomes are recorded in the background, right after each end
    while True:
        records = {r["job_id"]: r for r in cli("usage", "records")["records"]}
        if set(jobs.values()) <= set(records) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(records) == sorted(jobs.values())
    kinds = {name: records[job_id]["kind"] for name, job_id in jobs.items()}
    assert kinds == {"i2v": "JOB_KIND_GENERATION", "t2v": "JOB_KIND_GENERATION", "render": "JOB_KIND_RENDER",
                     "upscale": "JOB_KIND_UPSCALE"}
    for job_id, record in records.items():
        cost = cli("jobs", "get", job_id)["job"]["status"]["cost"]
        assert int(record["credits"]) > 0 and cost["final"] is True
        assert cost["credits"] == record["credits"] and int(cost["estimated_credits"]) > 0
