#!/usr/bin/env bash
# Idempotent setup of everything Viarte Studio needs on a fresh Debian machine:
# system packages, the Python venv (CPU torch pinned first), npm tools and the editor's packages.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
# The lock's torch is the CPU build; PyPI's torch would pull gigabytes of CUDA libraries.
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
STAMP_DIR="$ROOT/.cache/bootstrap"
mkdir -p "$STAMP_DIR"
log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

# 1. Debian packages: ffmpeg (encode/probe), chromium (browser tests), postgresql (DB tests), fonts (text clips),
#    docker-compose (validates deploy/compose.yaml; no container engine needed).
need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v chromium >/dev/null || need_apt+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)  # tests/deploy: `docker-compose config`
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# 2. Python: the venv from requirements.lock (every dependency of every extra, pinned with hashes;
#    refresh it with `.venv/bin/python deploy/lock.py refresh`), then the project itself without deps.
#    torch first, on its own: the lock pins the CPU build (+cpu), which is not on PyPI; pip finds it
#    through its find-links (a local wheel) or PyTorch's CPU index, which no other package needs.
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check --require-hashes --no-deps)
deps_hash="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP_DIR/python-$deps_hash" ]; then
  torch_pin="torch==$("$PY" deploy/lock.py version torch)"
  if [ "$("$PY" -m pip list --format=freeze 2>/dev/null | grep -i '^torch==')" != "$torch_pin" ]; then
    log "installing $torch_pin"
    "$PY" deploy/lock.py select --only torch >"$STAMP_DIR/torch.txt"
    "${PIP[@]}" --extra-index-url "$TORCH_CPU_INDEX" -r "$STAMP_DIR/torch.txt"
  fi
  log "installing requirements.lock"
  "${PIP[@]}" -r requirements.lock
  # Build with the locked setuptools: an isolated build would fetch an unpinned one.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  "$PY" -m pip check
  "$PY" deploy/lock.py check
  rm -f "$STAMP_DIR"/python-*; touch "$STAMP_DIR/python-$deps_hash"
fi

# 3. npm: buf (protos lint) and the browser editor's packages.
npm_install() {  # dir
  local dir="$1" lock_hash
  [ -f "$dir/package.json" ] || return 0
  lock_hash="$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -c1-16)"
  local stamp="$STAMP_DIR/npm-$(echo "$dir" | tr '/' '_')-$lock_hash"
  if [ ! -f "$stamp" ] || [ ! -d "$dir/node_modules" ]; then
    log "npm install in $dir"
    if [ -f "$dir/package-lock.json" ]; then (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    else (cd "$dir" && npm install --no-audit --no-fund --loglevel=error); fi
    rm -f "$STAMP_DIR/npm-$(echo "$dir" | tr '/' '_')-"*; touch "$stamp"
  fi
}
npm_install "scripts/tools"
npm_install "gateway/editor"
# 4. The editor the gateway serves (a no-op when dist/ is newer than every source).
if [ -f gateway/editor/package.json ]; then "$PY" -m gateway build >/dev/null; fi
log "ready"
