"""GPU paths: NVENC selection by trial encode and fp16 upscaling on CUDA (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.render.encoder import Codec, nvenc_works, select_encoder
from services.render.upscale.rrdbnet import load_rrdbnet
from services.render.upscale.worker import upscale_batch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_nvenc_is_chosen_when_its_trial_encode_works() -> None:
    chosen = select_encoder("ffmpeg", Codec.H264)
    assert chosen == ("h264_nvenc" if nvenc_works("ffmpeg", "h264_nvenc") else "libx264")


def test_fp16_cuda_matches_fp32_cpu(tiny_upscaler: Path) -> None:
    x = torch.rand(2, 3, 36, 64)
    cpu = upscale_batch(load_rrdbnet(tiny_upscaler), x)
    gpu = upscale_batch(load_rrdbnet(tiny_upscaler, device="cuda", fp16=True), x.cuda().half(), tile=32, padding=16)
    assert gpu.shape == cpu.shape and (gpu.float().cpu() - cpu).abs().mean() < 0.01
