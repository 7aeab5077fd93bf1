"""ListCapabilities: what the installed ffmpeg offers, discovered at server start."""

from __future__ import annotations

import subprocess

import pytest

from services.render.capabilities import FALLBACK_TRANSITIONS, capabilities, parse_filters, parse_transitions
from viarte.render.v1 import render_pb2, render_pb2_grpc


def test_transitions_are_read_off_ffmpeg_help() -> None:
    text = subprocess.run(["ffmpeg", "-hide_banner", "-h", "filter=xfade"], capture_output=True, text=True, check=True).stdout
    names = parse_transitions(text)
    # Every named value ffmpeg prints for xfade's transition option, custom excluded.
    printed = [line.split()[0] for line in text.splitlines() if "..FV" in line and line.startswith("     ")]
    assert set(names) == set(printed) - {"custom"} and len(names) == len(set(names))
    assert set(FALLBACK_TRANSITIONS) <= set(names) and "circleopen" in names and "custom" not in names
    assert parse_transitions("no such filter") == ()


def test_filters_listing_parse() -> None:
    listing = " TSC lut3d             V->V       Adjust colors using a 3D LUT.\n ... loudnorm          A->A       EBU R128\n"
    assert parse_filters(listing) == {"lut3d", "loudnorm"}
    caps = capabilities("ffmpeg")
    assert "fade" in caps.transitions and caps.lut_formats == ("cube",) and "libx264" in caps.encoders
    assert {"lut", "chroma_key", "blend_mode"} <= set(caps.filters)
    broken = capabilities("/nonexistent/ffmpeg")
    assert broken.transitions == FALLBACK_TRANSITIONS and broken.filters == () and broken.encoders == ()


@pytest.mark.asyncio(loop_scope="session")
async def test_list_capabilities_rpc(render_service, user_factory) -> None:
    user = await user_factory()
    stub = render_pb2_grpc.RenderServiceStub(render_service.channel)
    caps = await stub.ListCapabilities(render_pb2.ListCapabilitiesRequest(), metadata=user.metadata)
    assert list(caps.transitions) == list(capabilities(render_service.config.ffmpeg_binary).transitions)
    assert len(caps.transitions) >= 40 and "pixelize" in caps.transitions
    assert list(caps.lut_formats) == ["cube"] and "libx264" in caps.encoders and caps.loudness_normalization
    assert "ease_in_out" in caps.easings and "vintage" in caps.curves_presets and "multiply" in caps.blend_modes
