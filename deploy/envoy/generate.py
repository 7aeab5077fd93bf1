"""Envoy bootstrap of the compose deployment, made by the dev mesh's own generator.

    python deploy/envoy/generate.py [--static-dir DIR] [--output PATH] [--set NAME=VALUE ...]

Settings come from ``deploy/envoy/gateway.env`` (``VIARTE_GATEWAY_*`` variables, loaded into
``GatewayConfig`` by the kit's ``load_config`` exactly as the dev gateway loads them), then from
``--set`` overrides. The result is ``gateway.envoy_config.render_yaml`` of that config: the same
routes, filters, health checks and limits as the dev mesh, with compose service names as upstreams.

``--static-dir`` is the editor's build inside the image (``/srv/editor``); every file in it gets a
route, so the config is generated where the build is (``deploy/docker/envoy.Dockerfile``). Without
it the config serves the gRPC API only. The default output is ``deploy/envoy/envoy.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repo's packages are importable
    sys.path.insert(0, str(ROOT))

from gateway.config import GatewayConfig  # noqa: E402
from gateway.envoy_config import render_yaml  # noqa: E402
from services.kit.config import load_config  # noqa: E402

__all__ = ["DEFAULT_ENV_FILE", "DEFAULT_OUTPUT", "compose_gateway_config", "generate", "main", "read_env_file"]

DEFAULT_ENV_FILE = HERE / "gateway.env"
DEFAULT_OUTPUT = HERE / "envoy.yaml"


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=VALUE`` lines (compose ``env_file`` syntax without quoting); ``#`` starts a comment line."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{path}:{number}: expected NAME=VALUE, got {line!r}")
        values[name.strip()] = value.strip()
    return values


def compose_gateway_config(
    env_file: Path = DEFAULT_ENV_FILE,
    static_dir: str = "",
    overrides: Mapping[str, str] | None = None,
) -> GatewayConfig:
    environ = {**read_env_file(env_file), **(overrides or {}), "VIARTE_GATEWAY_STATIC_DIR": static_dir}
    return load_config(GatewayConfig, environ)


def generate(config: GatewayConfig, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_yaml(config))
    return output


def _override(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/envoy/generate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE)
    parser.add_argument("--static-dir", default="", help="the editor build to serve ('' = API only)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--set", dest="overrides", type=_override, action="append", default=[])
    args = parser.parse_args(argv)
    config = compose_gateway_config(args.env_file, args.static_dir, dict(args.overrides))
    print(generate(config, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
