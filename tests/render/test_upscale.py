"""Real-ESRGAN x2: the project's RRDBNet in the official weight format, tiling, and upscale jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from services.render.upscale.pool import UpscaleCancelled, UpscaleError, UpscalePool, upscale_video
from services.render.upscale.rrdbnet import RRDBNet, arch_from_state_dict, build_tiny, load_rrdbnet
from services.render.upscale.worker import upscale_batch
from tests.fixtures.render import probe_file
from viarte.errors import from_rpc_error
from viarte.render.v1 import render_pb2, render_pb2_grpc
from viarte.type.v1 import job_pb2


def test_full_size_architecture_matches_realesrgan_x2plus_keys() -> None:
    state = RRDBNet(scale=2).state_dict()  # num_feat 64, 23 blocks, grow 32: RealESRGAN_x2plus.pth
    assert state["conv_first.weight"].shape == (64, 12, 3, 3)  # pixel-unshuffled RGB input
    assert state["body.22.rdb3.conv5.weight"].shape == (64, 64 + 4 * 32, 3, 3)
    assert {"conv_body.weight", "conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"} <= set(state)
    assert len(state) == 2 + 23 * 3 * 5 * 2 + 5 * 2
    assert arch_from_state_dict(state) == {"num_in_ch": 3, "num_out_ch": 3, "scale": 2, "num_feat": 64, "num_block": 23, "num_grow_ch": 32}


def test_builders_of_one_tiny_upscaler_at_once_all_succeed(tmp_path: Path) -> None:
    """Render workers of several replicas may build the tiny fallback into one file at once. They
    shared one temporary file: the first moved it into place and the others' rename failed with
    FileNotFoundError. Six builders released together (threads: the same file operations)."""
    target, barrier, errors = tmp_path / "tiny.pth", threading.Barrier(6), []

    def build() -> None:
        barrier.wait()
        try:
            build_tiny(target)
        except Exception as exc:
            errors.append(exc)

    builders = [threading.Thread(target=build) for _ in range(6)]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(60)
    assert errors == [] and [p.name for p in tmp_path.iterdir()] == ["tiny.pth"]
    load_rrdbnet(target, device="cpu", fp16=False)  # whole: one builder's file, never a mix


def test_tiny_weights_load_strictly_and_tiling_matches(tiny_upscaler: Path) -> None:
    checkpoint = torch.load(tiny_upscaler, weights_only=True)
    assert set(checkpoint) == {"params_ema"}
    model = load_rrdbnet(tiny_upscaler)
    x = torch.rand(2, 3, 35, 50)  # odd height: reflect-padded and cropped
    whole = upscale_batch(model, x)
    assert whole.shape == (2, 3, 70, 100)
    with torch.inference_mode():
        raw = model(torch.nn.functional.pad(x, (0, 0, 0, 1), mode="reflect"))[:, :, :70].clamp(0, 1)
    assert torch.equal(whole, raw)
    tiled = upscale_batch(model, x, tile=16, padding=16)
    # one RRDB block: 16 px of context covers the receptive field, so tiles are seamless
    assert (tiled - whole).abs().max() < 1e-4


def _decode(path: Path | str, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


async def _group_after_exit(pgid: int, within: float = 5.0) -> list[int]:
    """The group's live members once SIGKILLed processes had ``within`` seconds to be torn down
    (the kernel finishes a killed process asynchronously; on a loaded machine that takes a while)."""
    deadline = asyncio.get_running_loop().time() + within
    while (members := _group_members(pgid)) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polling /proc
        await asyncio.sleep(0.05)
    return members


@pytest.mark.asyncio(loop_scope="session")
async def test_upscale_job_doubles_and_matches_the_network(render_service, storage_service, user_factory, render_media, tiny_upscaler, tmp_path) -> None:
    user = await user_factory()
    src = Path(render_media.small.location)
    data = await asyncio.to_thread(src.read_bytes)
    asset = await storage_service.upload(user, data, "small.mp4", "video/mp4")
    stub = render_pb2_grpc.UpscaleServiceStub(render_service.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateUpscaleJob(render_pb2.CreateUpscaleJobRequest(parameters=render_pb2.UpscaleParameters(video_asset_id=asset, scale=4)), metadata=user.metadata)
    assert [f.field for f in from_rpc_error(info.value).field_violations] == ["parameters.scale"]
    job = (await stub.CreateUpscaleJob(
        render_pb2.CreateUpscaleJobRequest(parameters=render_pb2.UpscaleParameters(video_asset_id=asset, scale=2, tile_size=32, tile_padding=16)),
        metadata=user.metadata,
    )).job
    frames_seen = []
    async for msg in stub.WatchUpscaleJob(render_pb2.WatchUpscaleJobRequest(id=job.id), metadata=user.metadata, timeout=300):
        if msg.HasField("event") and msg.event.progress.stage == job_pb2.STAGE_UPSCALING:
            frames_seen.append((msg.event.progress.frame, msg.event.progress.total_frames))
        last = msg
    assert last.event.state == job_pb2.JOB_STATE_SUCCEEDED, last
    assert frames_seen[-1] == (15, 15) and [f for f, _ in frames_seen] == list(range(1, 16))  # every frame reported
    result = (await stub.GetUpscaleJob(render_pb2.GetUpscaleJobRequest(id=job.id), metadata=user.metadata)).job.result
    assert (result.width, result.height, result.frame_count) == (128, 72, 15)
    out = tmp_path / "x2.mp4"
    out.write_bytes(await storage_service.download(user, result.video_asset_id))
    facts = probe_file(out)
    assert (facts["width"], facts["height"], facts["frames"], facts["fps"]) == (128, 72, 15, 15.0) and facts["has_audio"]
    # the stored video is the network's output (up to H.264 at CRF 18)
    model = load_rrdbnet(tiny_upscaler)
    inputs = torch.from_numpy(_decode(src, 64, 36)[[0, 7]].copy()).permute(0, 3, 1, 2).float() / 255
    expected = (upscale_batch(model, inputs, tile=32, padding=16) * 255).round().permute(0, 2, 3, 1).numpy()
    produced = _decode(out, 128, 72)[[0, 7]]
    assert expected.std() > 20  # a picture, not a flat grey: the comparison means something
    diff = np.abs(produced.astype(float) - expected)
    assert diff.mean() < 5.0, diff.mean()  # 4:2:0 chroma of a noisy random-net picture costs a few levels
    # and it is not just any upscale: a plain bicubic x2 of the same frames is far off
    bicubic = torch.nn.functional.interpolate(inputs, scale_factor=2, mode="bicubic").clamp(0, 1) * 255
    assert np.abs(produced.astype(float) - bicubic.permute(0, 2, 3, 1).numpy()).mean() > 4 * diff.mean()


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (the worker leads its own, with its ffmpeg children)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.mark.asyncio(loop_scope="session")
async def test_warm_worker_reused_restarted_after_crash_and_cancel(render_service, render_media, tiny_upscaler, tmp_path) -> None:
    config = replace(render_service.config, upscale_worker_idle_seconds=30)
    src, ctype = render_media.small.location, render_media.small.content_type
    pool = UpscalePool(config.upscale_worker_idle_seconds)
    try:
        # 1. two jobs, one process: the second skips the start (torch import, weights)
        first = await upscale_video(config, src, ctype, tmp_path / "a.mp4", pool=pool)
        [pid] = pool.idle_pids
        second = await upscale_video(config, src, ctype, tmp_path / "b.mp4", pool=pool)
        assert pool.idle_pids == [pid] and pool.started == 1
        assert first.frame == second.frame == 15 and probe_file(tmp_path / "b.mp4")["frames"] == 15
        # 2. cancel kills the worker and its ffmpegs at once and leaves no partial file
        cancel = asyncio.Event()
        with pytest.raises(UpscaleCancelled):
            await asyncio.wait_for(upscale_video(config, src, ctype, tmp_path / "c.mp4", pool=pool,
                                                 on_progress=lambda p: cancel.set(), cancel=cancel), 60)
        assert not (tmp_path / "c.mp4").exists() and pool.idle_pids == [] and await _group_after_exit(pid) == []
        # 3. the next job starts a fresh worker
        await upscale_video(config, src, ctype, tmp_path / "d.mp4", pool=pool)
        [fresh] = pool.idle_pids
        assert fresh != pid and pool.started == 2
        # 4. a worker that died while idle is replaced, not reused
        os.kill(fresh, signal.SIGKILL)
        await asyncio.sleep(0.2)
        await upscale_video(config, src, ctype, tmp_path / "e.mp4", pool=pool)
        assert pool.started == 3 and probe_file(tmp_path / "e.mp4")["frames"] == 15
        # 5. a worker that crashes mid-job fails that job (its ffmpegs go too), and is replaced
        busy: list[int] = []

        def crash(_progress: object) -> None:
            if not busy:
                busy.extend(pool.busy_pids)
                os.kill(busy[0], signal.SIGKILL)

        with pytest.raises(UpscaleError):
            await asyncio.wait_for(upscale_video(config, src, ctype, tmp_path / "x.mp4", pool=pool, on_progress=crash), 60)
        assert not (tmp_path / "x.mp4").exists() and await _group_after_exit(busy[0]) == [] and pool.idle_pids == []
        await upscale_video(config, src, ctype, tmp_path / "y.mp4", pool=pool)
        assert pool.started == 4
        # 6. a failing job (no video) fails cleanly on the warm worker, which is then retired
        [warm] = pool.idle_pids
        with pytest.raises(UpscaleError, match="not a video"):
            await upscale_video(config, str(Path(render_media.tone.location)), render_media.tone.content_type, tmp_path / "f.mp4", pool=pool)
        assert not (tmp_path / "f.mp4").exists() and await _group_after_exit(warm) == []
        await upscale_video(config, src, ctype, tmp_path / "g.mp4", pool=pool)
        assert pool.started == 5 and pool.idle_pids != [warm]
    finally:
        await pool.close()
    # 7. bounded idle time: retired after it
    short = UpscalePool(0.3)
    try:
        await upscale_video(config, src, ctype, tmp_path / "h.mp4", pool=short)
        [pid] = short.idle_pids
        await asyncio.sleep(1.5)
        assert short.idle_pids == [] and await _group_after_exit(pid) == []
    finally:
        await short.close()
