"""The dev tooling's ``viarte`` commands: ``up``, ``down``, ``status``, ``demo`` and ``models pull``.

Registered through the ``viarte.cli`` entry point group (see :mod:`viarte.cli.plugins`). The mesh,
the demo and the pull tool are imported only when their command runs, so ``viarte --help`` stays
as light as the SDK's own commands.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from viarte.cli.common import Ctx, context, fail, handled, set_default_state_dir
from viarte.cli.models import models_app

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """The ``viarte.cli`` entry point: adds the dev commands to the CLI's root app."""
    set_default_state_dir(_configured_state_dir)
    app.command()(handled(up))
    app.command()(handled(down))
    app.command()(handled(status))
    app.command()(handled(demo))
    models_app.command(
        "pull", add_help_option=False, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
    )(models_pull)


def _configured_state_dir() -> Path:
    """The mesh config's state folder (VIARTE_MESH_STATE_DIR): the CLI and the runner it starts agree."""
    from services.kit.config import ConfigError, load_config
    from studio_dev.mesh.config import MeshConfig

    try:
        return Path(load_config(MeshConfig).state_dir)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def _mesh() -> Any:
    try:
        import studio_dev.mesh as mesh
    except ImportError as exc:
        fail(f"the dev mesh needs the repository checkout with the server dependencies ({exc})")
    return mesh


def _mesh_config(c: Ctx, **overrides: Any) -> Any:
    mesh = _mesh()
    from services.kit.config import load_config

    config = load_config(mesh.MeshConfig)
    values = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, state_dir=str(c.state_dir.absolute()), **values)


def up(
    ctx: typer.Context,
    foreground: Annotated[bool, typer.Option(help="Run in this terminal until Ctrl-C.")] = False,
    models: Annotated[str | None, typer.Option(help="tiny (offline CPU models) or real (GPU weights).")] = None,
    free_ports: Annotated[bool | None, typer.Option(help="Pick free ports instead of the defaults.")] = None,
    gateway: Annotated[bool | None, typer.Option(help="Start Envoy (gRPC-Web + the editor).")] = None,
    s3: Annotated[bool | None, typer.Option(help="Start the embedded S3 server (SeaweedFS).")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Start only these services (repeatable).")] = None,
    postgres: Annotated[
        bool | None, typer.Option(help="One embedded PostgreSQL for every service instead of SQLite files.")
    ] = None,
    replicas: Annotated[
        int | None, typer.Option(min=1, help="Processes per service (more than 1 needs --postgres).")
    ] = None,
    ray: Annotated[
        bool | None, typer.Option(help="Run inference and render on a local Ray cluster (a head + GPU nodes).")
    ] = None,
    ray_nodes: Annotated[
        int | None, typer.Option(min=1, help="Ray worker nodes with --ray, one logical GPU each (default 2).")
    ] = None,
) -> None:
    """Start the local mesh: S3, every service that exists, Envoy; waits on health checks."""
    c = context(ctx)
    if models not in (None, "tiny", "real"):
        fail("--models must be 'tiny' or 'real'")
    services = tuple(only) if only else None
    from studio_dev.mesh.config import GRPC_SERVICES

    if services and not set(services) <= set(GRPC_SERVICES):
        fail(f"--only takes {', '.join(GRPC_SERVICES)}")
    database = None if postgres is None else ("postgres" if postgres else "sqlite")
    config = _mesh_config(c, models=models, free_ports=free_ports, gateway=gateway, s3=s3, services=services,
                          database=database, replicas=replicas, ray=ray, ray_nodes=ray_nodes)  # fmt: skip
    mesh = _mesh()
    if foreground:
        c.info("starting the mesh (Ctrl-C stops it)…")
        try:
            mesh.run_foreground(config, ready=lambda state: _print_mesh(c, state))
        except mesh.MeshError as exc:
            c.err.print(f"[bold red]mesh failed[/] {exc}")
            raise typer.Exit(1) from None
        return
    with c.err.status("starting the mesh…"):
        try:
            state = mesh.start(config)
        except mesh.MeshError as exc:
            c.err.print(f"[bold red]mesh failed[/] {exc}")
            raise typer.Exit(1) from None
    _print_mesh(c, state)


def _print_mesh(c: Ctx, state: Any) -> None:
    def human() -> None:
        table = Table(title=f"viarte mesh ({state.models} models) — logs in {Path(state.state_dir) / 'logs'}")
        for col in ("process", "status", "address", "note"):
            table.add_column(col)
        for p in state.processes:
            table.add_row(p.name, p.status, p.address, p.note)
        c.out.print(table)
        if state.gateway_url:
            c.out.print(f"editor: {state.editor_url}")

    c.emit(dataclasses.asdict(state), human)


def down(ctx: typer.Context) -> None:
    """Stop the local mesh (from any shell)."""
    c = context(ctx)
    final = _mesh().stop(c.state_dir.absolute())
    c.emit({"stopped": final is not None}, lambda: c.out.print("stopped" if final else "no mesh recorded here"))


def status(ctx: typer.Context) -> None:
    """Show each process of the local mesh and whether it answers its health check."""
    c = context(ctx)
    state, rows = _mesh().status(c.state_dir.absolute())
    if state is None:
        c.emit({"state": "not running", "processes": []}, lambda: c.out.print("no mesh running (`viarte up`)"))
        raise typer.Exit(1)

    def human() -> None:
        table = Table(title=f"mesh: {state.state}")
        for col in ("process", "status", "health", "pid", "address", "log"):
            table.add_column(col)
        for r in rows:
            table.add_row(r.name, r.status, "✓" if r.healthy else "-", str(r.pid or ""), r.address, r.log)
        c.out.print(table)
        if state.ray_address:
            c.out.print(f"ray: {state.ray_address} (ray status --address {state.ray_address})", highlight=False)

    c.emit({"state": state.state, "endpoints": state.endpoints, "gateway_url": state.gateway_url,
            "ray_address": state.ray_address, "processes": [dataclasses.asdict(r) for r in rows]}, human)  # fmt: skip
    if state.state != "ready":
        raise typer.Exit(1)


def demo(
    ctx: typer.Context,
    models: Annotated[str, typer.Option(help="tiny (offline, CPU) or real (GPU weights).")] = "tiny",
    output: Annotated[Path, typer.Option(help="Folder for the final MP4.")] = Path("."),
    keep_running: Annotated[bool, typer.Option(help="Leave the mesh up afterwards (for the editor).")] = False,
    free_ports: Annotated[bool, typer.Option(help="Run the mesh on free ports.")] = False,
) -> None:
    """The end-to-end tour: mesh up, register, upload, i2v + face swap, t2v, render, upscale, download."""
    from studio_dev.demo import run_demo

    c = context(ctx)
    if models not in ("tiny", "real"):
        fail("--models must be 'tiny' or 'real'")
    config = _mesh_config(c, models=models, free_ports=free_ports)
    summary = run_demo(config, output=output, keep_running=keep_running, console=c.err if c.json else c.out)
    c.emit(summary, lambda: None)


def models_pull(ctx: typer.Context) -> None:
    """Download the served models' weights ahead of time, checksum-verified (server extras; see --help)."""
    try:
        from studio_dev.models_pull import main as pull_main
    except ImportError as exc:
        fail(f"`viarte models pull` runs next to the services (pip install 'viarte-studio[server,ml]'): {exc}")
    raise typer.Exit(pull_main(list(ctx.args)))
