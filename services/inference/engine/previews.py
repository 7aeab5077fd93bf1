"""Cheap previews: a small JPEG of the middle frame straight from the latents (no VAE)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["latent_preview_jpeg"]

# Stable Diffusion's 4-channel latent → RGB linear approximation (a known cheap preview).
_SD_FACTORS = np.array(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]],
    dtype=np.float32,
)


def latent_preview_jpeg(latents: Any, *, channels_first_frames: bool, max_side: int = 128) -> bytes:
    """``latents``: (B, C, F, h, w) (ModelScope, Wan) or (B, F, C, h, w) (SVD) tensor."""
    lat = latents.detach().float().cpu().numpy()[0]
    frame = lat[:, lat.shape[1] // 2] if channels_first_frames else lat[lat.shape[0] // 2]  # (C, h, w)
    chw = frame.reshape(frame.shape[0], -1).T  # (h*w, C)
    if chw.shape[1] == 4:
        rgb = chw @ _SD_FACTORS
        rgb = (rgb + 1.0) / 2.0
    else:  # other latent spaces: first three channels, normalised
        rgb = chw[:, :3]
        lo, hi = rgb.min(axis=0), rgb.max(axis=0)
        rgb = (rgb - lo) / np.maximum(hi - lo, 1e-6)
    img = (np.clip(rgb, 0, 1) * 255).astype(np.uint8).reshape(frame.shape[1], frame.shape[2], 3)
    pil = Image.fromarray(img)
    scale = max_side / max(pil.size)
    pil = pil.resize((max(1, int(pil.width * scale)), max(1, int(pil.height * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=70)
    return buf.getvalue()
