"""RRDBNet (ESRGAN's generator) with basicsr's parameter names, so ``RealESRGAN_x2plus.pth`` loads as is.

Why our own: realesrgan, basicsr and spandrel all import torchvision, which does not import with
this CPU torch build. The architecture is small and fixed; matching basicsr's module names
(``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1/2``, ``conv_hr``, ``conv_last``)
keeps the official weight files loadable with ``strict=True``. x2 models see a pixel-unshuffled
input (4x channels at half resolution) and upsample x4 inside: 2x overall.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["RRDBNet", "arch_from_state_dict", "build_tiny", "load_rrdbnet", "weights_of"]


class ResidualDenseBlock(nn.Module):  # type: ignore[misc]  # torch is not followed by mypy
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        out: torch.Tensor = x5 * 0.2 + x
        return out


class RRDB(nn.Module):  # type: ignore[misc]  # torch is not followed by mypy
    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x
        return out


class RRDBNet(nn.Module):  # type: ignore[misc]  # torch is not followed by mypy
    def __init__(
        self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 2, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32
    ) -> None:
        super().__init__()
        self.scale = scale
        unshuffle = {1: 16, 2: 4}.get(scale, 1)
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 2:
            feat = F.pixel_unshuffle(x, 2)
        elif self.scale == 1:
            feat = F.pixel_unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out: torch.Tensor = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out


def weights_of(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Real-ESRGAN releases keep the EMA weights under ``params_ema`` (older ones ``params``)."""
    for key in ("params_ema", "params"):
        if key in checkpoint:
            weights: dict[str, torch.Tensor] = checkpoint[key]
            return weights
    return checkpoint


def arch_from_state_dict(state: dict[str, torch.Tensor], scale: int = 2) -> dict[str, int]:
    """num_feat / num_block / num_grow_ch / channels read off the weights (no side config needed)."""
    first = state["conv_first.weight"]
    unshuffle = {1: 16, 2: 4}.get(scale, 1)
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("body.")}
    return {
        "num_in_ch": first.shape[1] // unshuffle,
        "num_out_ch": state["conv_last.weight"].shape[0],
        "scale": scale,
        "num_feat": first.shape[0],
        "num_block": len(blocks),
        "num_grow_ch": state["body.0.rdb1.conv1.weight"].shape[0],
    }


def load_rrdbnet(path: Path, *, scale: int = 2, device: str = "cpu", fp16: bool = False) -> RRDBNet:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = weights_of(checkpoint)
    model = RRDBNet(**arch_from_state_dict(state, scale))
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False).to(device)
    return model.half() if fp16 else model


def build_tiny(path: Path, *, num_feat: int = 8, num_block: int = 1, num_grow_ch: int = 4, seed: int = 0) -> Path:
    """A random-weight network in the same file format (``{"params_ema": state_dict}``), for
    tests and offline demos. Idempotent."""
    if path.exists():
        return path
    torch.manual_seed(seed)
    model = RRDBNet(scale=2, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch).eval()
    with torch.no_grad():
        # Calibrate the last layer so outputs span the picture range (mean 0.5, std 0.2) instead of
        # a near-constant grey: then comparing a stored video with the network says something.
        probe_out = model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))
        gain = 0.2 / float(probe_out.std().clamp_min(1e-6))
        model.conv_last.weight.mul_(gain)
        bias = model.conv_last.bias
        assert bias is not None
        bias.mul_(gain).add_(0.5 - float(probe_out.mean()) * gain)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of this builder's own: the render workers of several replicas may build the
    # same file at once (same seed, same bytes); a shared one was moved away under the second.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"params_ema": model.state_dict()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
