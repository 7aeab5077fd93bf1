"""Tiny random-weight face models with insightface's real signatures, built offline with `onnx.helper`.

Real deployments load a buffalo_l-style pack (SCRFD detector + ArcFace recogniser) and
`inswapper_128.onnx` from a model directory; tests and offline demos build these stand-ins once
into `<repo>/.cache/models/faces/` and run the very same insightface code paths on them:

- ``pack/det_tiny.onnx``: SCRFD-style detector, input ``[1, 3, height, width]``, 9 outputs
  (strides 8/16/32 x score ``[N, 1]`` / box ``[N, 4]`` / landmarks ``[N, 10]``, 2 anchors per cell),
  so ``model_zoo`` routes it to ``SCRFD``.
- ``pack/w600k_tiny.onnx``: ArcFace-style recogniser, ``[N, 3, 112, 112] -> [N, 512]``.
- ``inswapper_tiny.onnx`` (outside the pack folder, because ``FaceAnalysis`` loads every ``.onnx`` in
  it): INSwapper, inputs ``target [1, 3, 128, 128]`` and ``source [1, 512]``, output
  ``[1, 3, 128, 128]`` in 0..1; its LAST initializer is the ``512 x 512`` ``emap``.

The tiny detector's rule (deterministic, documented for tests): it reports at most one face, centred
in the image content, with a square box of half the content's short side and ArcFace-template
landmarks. The face exists iff the stride-32 detector cell holding the content's centre is bright
(mean pixel value above 127.5, score = sigmoid(8 * normalised mean)). The content extent is the
non-black area (insightface letterboxes with black at the right/bottom). `face_image()` draws a
textured bright square in the centre of a dark frame (one face); `face_image(face=False)` keeps the
centre dark (no face).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "EMBEDDING_SIZE",
    "TinyFaceModels",
    "build_tiny_face_models",
    "default_cache_dir",
    "face_image",
]

EMBEDDING_SIZE = 512
_OPSET = 17
_IR_VERSION = 8  # readable by every onnxruntime >= 1.10
_STRIDES = (8, 16, 32)
_FACE_STRIDE = 32
_SCORE_GAIN = 8.0
# The ArcFace alignment template (insightface.utils.face_align.arcface_dst) as fractions of the crop.
_LANDMARKS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
) / 112.0
_BUILD_TAG = "v1"  # bump when the graphs change so stale caches are rebuilt


@dataclass(frozen=True)
class TinyFaceModels:
    """Where the built models are: `models_dir` for FaceAnalysis, `swapper_path` for INSwapper."""

    models_dir: Path
    swapper_path: Path


def default_cache_dir() -> Path:
    return Path(__file__).resolve().parents[3] / ".cache" / "models" / "faces"


def build_tiny_face_models(cache_dir: Path | None = None) -> TinyFaceModels:
    """Build the three tiny models once (idempotent; atomic writes so parallel builders are safe)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    models = TinyFaceModels(models_dir=root / f"tiny_pack_{_BUILD_TAG}", swapper_path=root / f"inswapper_tiny_{_BUILD_TAG}.onnx")
    _save_once(models.models_dir / "det_tiny.onnx", _detector)
    _save_once(models.models_dir / "w600k_tiny.onnx", _recogniser)
    _save_once(models.swapper_path, _swapper)
    return models


def _save_once(path: Path, build: object) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build()  # type: ignore[operator]
    onnx.checker.check_model(model)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    onnx.save(model, tmp)
    os.replace(tmp, path)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="viarte-tiny")
    model.ir_version = _IR_VERSION
    return model


class _Graph:
    """A small builder: unique names, constants as initializers, nodes named without Sub/Mul prefixes
    (ArcFaceONNX reads mxnet-style normalisation from the first node names)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}_{hint}_{self._n}"

    def const(self, value: object, hint: str = "c") -> str:
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"n{len(self.nodes)}_{out}", **attrs))
        return out

    def output(self, op_type: str, inputs: list[str], out: str, **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{len(self.nodes)}_{out}", **attrs))


def _detector() -> onnx.ModelProto:
    g = _Graph("det")
    x = "input.1"
    gray = g.op("ReduceMean", x, axes=[1], keepdims=1)  # [1,1,H,W]
    content_w = _content_extent(g, x, axis=3)
    content_h = _content_extent(g, x, axis=2)
    half = g.const(0.5)
    cx = g.op("Mul", content_w, half)
    cy = g.op("Mul", content_h, half)
    face = g.op("Mul", g.op("Min", content_w, content_h), half)
    x1 = g.op("Sub", cx, g.op("Mul", face, half))
    y1 = g.op("Sub", cy, g.op("Mul", face, half))
    outs: dict[str, list[str]] = {"score": [], "bbox": [], "kps": []}
    for stride in _STRIDES:
        score, bbox, kps = _detector_stride(g, gray, stride, cx, cy, x1, y1, face)
        outs["score"].append(score)
        outs["bbox"].append(bbox)
        outs["kps"].append(kps)
    names, width = [], {"score": 1, "bbox": 4, "kps": 10}
    outputs = []
    for kind in ("score", "bbox", "kps"):
        for stride, tensor in zip(_STRIDES, outs[kind], strict=True):
            name = f"{kind}_{stride}"
            g.output("Identity", [tensor], name)
            names.append(name)
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{stride}", width[kind]]))
    graph = helper.make_graph(
        g.nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs,
        g.inits,
    )
    return _model(graph)


def _content_extent(g: _Graph, x: str, axis: int) -> str:
    """Index (1-based) of the last row/column holding a non-black pixel: [1,1,1,1]."""
    other = 2 if axis == 3 else 3
    line_max = g.op("ReduceMax", x, axes=[1, other], keepdims=1)  # [1,1,1,W] or [1,1,H,1]
    # Black (0) normalises to -0.996; anything brighter than ~1/255 counts as content.
    is_content = g.op("Cast", g.op("Greater", line_max, g.const(-0.99)), to=TensorProto.FLOAT)
    position = g.op("CumSum", g.op("Add", g.op("Mul", is_content, g.const(0.0)), g.const(1.0)), g.const(np.int64(axis)))
    return g.op("ReduceMax", g.op("Mul", is_content, position), axes=[2, 3], keepdims=1)


def _detector_stride(g: _Graph, gray: str, stride: int, cx: str, cy: str, x1: str, y1: str, face: str) -> tuple[str, str, str]:
    pooled = g.op("AveragePool", gray, kernel_shape=[stride, stride], strides=[stride, stride])  # [1,1,h,w]
    ones = g.op("Add", g.op("Mul", pooled, g.const(0.0)), g.const(1.0))
    s = g.const(float(stride))
    ax = g.op("Mul", g.op("Sub", g.op("CumSum", ones, g.const(np.int64(3))), g.const(1.0)), s)
    ay = g.op("Mul", g.op("Sub", g.op("CumSum", ones, g.const(np.int64(2))), g.const(1.0)), s)
    in_x = g.op("And", g.op("LessOrEqual", ax, cx), g.op("Less", cx, g.op("Add", ax, s)))
    in_y = g.op("And", g.op("LessOrEqual", ay, cy), g.op("Less", cy, g.op("Add", ay, s)))
    cell = g.op("Cast", g.op("And", in_x, in_y), to=TensorProto.FLOAT)
    if stride != _FACE_STRIDE:
        cell = g.op("Mul", cell, g.const(0.0))
    score = g.op("Mul", cell, g.op("Sigmoid", g.op("Mul", pooled, g.const(_SCORE_GAIN))))
    zeros = g.op("Mul", score, g.const(0.0))
    x2 = g.op("Add", x1, face)
    y2 = g.op("Add", y1, face)
    # Distances in stride units from each anchor point (SCRFD multiplies them by the stride).
    left = g.op("Div", g.op("Sub", ax, x1), s)
    top = g.op("Div", g.op("Sub", ay, y1), s)
    right = g.op("Div", g.op("Sub", x2, ax), s)
    bottom = g.op("Div", g.op("Sub", y2, ay), s)
    bbox = g.op("Concat", left, top, right, bottom, axis=1)
    kps_parts = []
    for fx, fy in _LANDMARKS:
        kx = g.op("Add", x1, g.op("Mul", face, g.const(float(fx))))
        ky = g.op("Add", y1, g.op("Mul", face, g.const(float(fy))))
        kps_parts += [g.op("Div", g.op("Sub", kx, ax), s), g.op("Div", g.op("Sub", ky, ay), s)]
    kps = g.op("Concat", *kps_parts, axis=1)
    # [1,C,h,w] -> [h*w*2, C], location-major then anchor (the second anchor never scores).
    return (
        _anchors(g, g.op("Concat", score, zeros, axis=1), 1),
        _anchors(g, g.op("Concat", bbox, bbox, axis=1), 4),
        _anchors(g, g.op("Concat", kps, kps, axis=1), 10),
    )


def _anchors(g: _Graph, t: str, width: int) -> str:
    hwc = g.op("Transpose", t, perm=[0, 2, 3, 1])
    return g.op("Reshape", hwc, g.const(np.array([-1, width], dtype=np.int64)))


def _recogniser() -> onnx.ModelProto:
    rng = np.random.default_rng(112)
    g = _Graph("rec")
    conv_w = g.const(rng.normal(0, 0.1, (16, 3, 8, 8)), "conv_w")
    # Centre each crop so the embedding follows the texture, not the overall brightness.
    centred = g.op("Sub", "input.1", g.op("ReduceMean", "input.1", axes=[1, 2, 3], keepdims=1))
    conv = g.op("Conv", centred, conv_w, kernel_shape=[8, 8], strides=[8, 8])  # [N,16,14,14]
    flat = g.op("Flatten", conv, axis=1)
    fc_w = g.const(rng.normal(0, 1 / np.sqrt(16 * 14 * 14), (16 * 14 * 14, EMBEDDING_SIZE)), "fc_w")
    g.output("Gemm", [flat, fc_w], "683")
    graph = helper.make_graph(
        g.nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", EMBEDDING_SIZE])],
        g.inits,
    )
    return _model(graph)


def _swapper() -> onnx.ModelProto:
    rng = np.random.default_rng(128)
    g = _Graph("swap")
    conv_w = g.const(rng.normal(0, 1.0, (3, 3, 1, 1)), "conv_w")
    conv = g.op("Conv", "target", conv_w)
    identity = g.op("Gemm", "source", g.const(rng.normal(0, 2.0, (EMBEDDING_SIZE, 3)), "id_w"))
    bias = g.op("Reshape", identity, g.const(np.array([1, 3, 1, 1], dtype=np.int64)))
    g.output("Sigmoid", [g.op("Add", conv, bias)], "output")
    # insightface reads graph.initializer[-1] as emap; the graph itself never uses it.
    emap = rng.normal(0, 1 / np.sqrt(EMBEDDING_SIZE), (EMBEDDING_SIZE, EMBEDDING_SIZE)).astype(np.float32)
    g.inits.append(numpy_helper.from_array(emap, "emap"))
    graph = helper.make_graph(
        g.nodes,
        "tiny_inswapper",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, EMBEDDING_SIZE]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        g.inits,
    )
    return _model(graph)


def face_image(width: int, height: int, *, seed: int = 0, face: bool = True) -> NDArray[np.uint8]:
    """An RGB test frame for the tiny detector: dark textured background, plus (when `face`) a bright
    textured square of 0.6 x the short side in the centre. The texture depends on `seed`, so two
    seeds give two different identities to the recogniser; the same seed gives the same one."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    if face:
        side = int(0.6 * min(width, height))
        top, left = (height - side) // 2, (width - side) // 2
        img[top : top + side, left : left + side] = rng.integers(160, 256, (side, side, 3), dtype=np.uint8)
    return img
