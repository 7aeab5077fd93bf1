"""Rebuilds the demo's bundled media (committed, so the demo needs neither Pillow nor this script):

- ``demo_face.png``: a synthetic face (skin oval, eyes, brows, nose, mouth on a dark backdrop), 256x256.
  Its centre (the nose bridge) is bright, which is what the tiny offline face detector keys on
  (``services/inference/faceswap/tiny.py``: the stride-32 cell holding the centre must average
  above 127.5); real detectors see a cartoon face.
- ``demo_tone.m4a``: 6 s of a soft A major chord (AAC, 44.1 kHz stereo), made with ffmpeg's sine source.

    .venv/bin/python studio_dev/assets/make_assets.py
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def face(size: int = 256) -> Image.Image:
    img = Image.new("RGB", (size, size))
    px = img.load()
    assert px is not None
    for y in range(size):  # a dark blue-violet gradient backdrop, never pure black
        for x in range(size):
            px[x, y] = (28 + x // 16, 30 + y // 12, 62 + (x + y) // 20)
    d = ImageDraw.Draw(img)
    s = size / 256
    d.ellipse([58 * s, 34 * s, 198 * s, 226 * s], fill=(236, 196, 164))  # face
    d.ellipse([44 * s, 104 * s, 66 * s, 146 * s], fill=(226, 184, 152))  # ears
    d.ellipse([190 * s, 104 * s, 212 * s, 146 * s], fill=(226, 184, 152))
    d.chord([52 * s, 22 * s, 204 * s, 120 * s], 180, 360, fill=(74, 46, 30))  # hair
    for cx in (100, 156):
        d.ellipse([(cx - 16) * s, 94 * s, (cx + 16) * s, 112 * s], fill=(250, 250, 250))  # eyes
        d.ellipse([(cx - 7) * s, 96 * s, (cx + 7) * s, 110 * s], fill=(60, 90, 140))
        d.ellipse([(cx - 3) * s, 100 * s, (cx + 3) * s, 106 * s], fill=(15, 15, 20))
        d.arc([(cx - 20) * s, 78 * s, (cx + 20) * s, 96 * s], 200, 340, fill=(70, 45, 30), width=max(1, int(4 * s)))
    d.line([128 * s, 116 * s, 122 * s, 158 * s, 132 * s, 160 * s], fill=(214, 170, 140), width=max(1, int(3 * s)))  # nose
    d.chord([100 * s, 168 * s, 156 * s, 196 * s], 0, 180, fill=(170, 70, 80))  # mouth
    return img.filter(ImageFilter.SMOOTH)


def tone(path: Path, seconds: float = 6.0) -> None:
    notes = (220.0, 277.18, 329.63)  # A3, C#4, E4
    inputs = [a for f in notes for a in ("-f", "lavfi", "-i", f"sine=frequency={f}:sample_rate=44100:duration={seconds}")]
    mix = f"amix=inputs={len(notes)}:normalize=1,volume=0.6,afade=t=in:d=0.5,afade=t=out:st={seconds - 1}:d=1,aformat=channel_layouts=stereo"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", *inputs, "-filter_complex", mix, "-c:a", "aac", "-b:a", "64k", str(path)],
        check=True,
    )


if __name__ == "__main__":
    face().save(HERE / "demo_face.png", optimize=True)
    tone(HERE / "demo_tone.m4a")
    print("wrote", HERE / "demo_face.png", HERE / "demo_tone.m4a")
