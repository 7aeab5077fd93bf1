"""gRPC-Web framing of the Python client, byte by byte."""

from __future__ import annotations

import base64

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from gateway.grpcweb import _FrameReader, _parse_trailers, _status_error, decode_frames, encode_frame


def test_frames_round_trip_and_split_anywhere() -> None:
    wire = encode_frame(b"first") + encode_frame(b"") + encode_frame(b"grpc-status: 0\r\n", trailer=True)
    assert decode_frames(wire) == [(0, b"first"), (0, b""), (0x80, b"grpc-status: 0\r\n")]
    reader = _FrameReader()
    frames = [frame for byte in wire for frame in reader.feed(bytes([byte]))]
    assert frames == decode_frames(wire)
    assert reader.pending == 0


def test_truncated_body_is_an_error() -> None:
    with pytest.raises(ValueError, match="trailing bytes"):
        decode_frames(encode_frame(b"whole")[:-1])


def test_trailers_carry_code_message_and_details() -> None:
    info = error_details_pb2.ErrorInfo(reason="QUEUE_FULL", domain="viarte.inference")
    status = status_pb2.Status(code=8, message="queue is full")
    status.details.add().Pack(info)
    encoded = (
        base64.b64encode(status.SerializeToString()).decode().rstrip("=")
    )  # unpadded, as some servers send
    trailers = _parse_trailers(
        f"grpc-status: 8\r\ngrpc-message: queue%20is%20full\r\ngrpc-status-details-bin: {encoded}\r\n".encode()
    )
    error = _status_error(trailers)
    assert error is not None
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.message == "queue is full"
    assert error.reason == "QUEUE_FULL"
    assert _status_error({"grpc-status": "0"}) is None
    missing = _status_error({})
    assert missing is not None and missing.code is grpc.StatusCode.INTERNAL
