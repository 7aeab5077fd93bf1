"""A face swap target that is a playlist naming local files of the inference host (issue 21 §3.2c):
the job fails clearly and never hands back what those files hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.inference.faceswap.engine import FaceSwapEngine
from services.inference.faceswap.worker import run_face_swap_work
from services.inference.worker.protocol import FaceSwapWork
from services.kit.errors import ServiceError
from tests.faceswap.helpers import face_image, image_bytes
from tests.hostile_media import hls_playlist, id3_then, leaks
from viarte.inference.v1 import face_swap_pb2


def _secret_video(path: Path) -> Path:
    """A host file that decodes as video (so following the playlist would "work")."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=12:duration=0.5",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts", str(path)],
        check=True, timeout=60,
    )
    return path


@pytest.mark.parametrize("wrap", [lambda b: b, id3_then], ids=["playlist", "id3+playlist"])
def test_a_playlist_target_naming_host_files_fails_and_returns_nothing(
    engine: FaceSwapEngine, tmp_path: Path, wrap
) -> None:
    secret = _secret_video(tmp_path / "host-secret.ts")
    target = tmp_path / "target"
    # (ffmpeg refuses segments without a media extension, such as /etc/hostname, by itself.)
    target.write_bytes(wrap(hls_playlist(f"file://{secret}")))
    source = tmp_path / "source.png"
    source.write_bytes(image_bytes(face_image(96, 96, seed=2)))
    out = tmp_path / "out"
    out.mkdir()
    options = face_swap_pb2.FaceSwapOptions(source_face_asset_id="s", selector=face_swap_pb2.FACE_SELECTOR_MODE_ALL)
    work = FaceSwapWork(str(target), True, str(source), str(out), options.SerializeToString(), "video/mp4")
    with pytest.raises(ServiceError) as info:
        run_face_swap_work(engine, work)
    err = info.value
    assert err.reason == "UNSUPPORTED_MEDIA" and err.code.name == "INVALID_ARGUMENT", (err.code, err.reason, str(err))
    assert str(secret) not in str(err) and not leaks(str(err)), str(err)
    assert list(out.iterdir()) == []
