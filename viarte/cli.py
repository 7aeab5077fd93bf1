"""``viarte``: the Viarte Studio command line (Typer + Rich) over the Python SDK.

Exit codes: 0 success · 1 unexpected server error · 2 usage error (bad flags or arguments) ·
3 not signed in / not allowed · 4 not found · 5 input rejected by the service · 6 quota or rate
limit · 7 service unreachable or too slow · 8 the job failed · 130 cancelled (Ctrl-C or job
cancelled). ``--json`` (anywhere on the line) prints machine-readable results on stdout.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from viarte.client import Client, face_swap_options, generation_parameters
from viarte.credentials import Tokens
from viarte.errors import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    JobFailed,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    ViarteError,
)
from viarte.inference.v1 import generation_pb2
from viarte.jobs import JobProgress, JobState
from viarte.profile import Profile, Session, default_config_path, mesh_endpoints
from viarte.progress import JobProgressView, TransferProgress
from viarte.render.v1 import render_pb2
from viarte.timeline import load_timeline
from viarte.transport import Endpoints, TlsConfig

__all__ = ["EXIT_CODES", "app", "main"]

EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (JobFailed, 8),
    (Cancelled, 130),
    (ClientError, 2),
    (Unauthenticated, 3),
    (PermissionDenied, 3),
    (NotFound, 4),
    (InvalidArgument, 5),
    (FailedPrecondition, 5),
    (ResourceExhausted, 6),
    (Unavailable, 7),
    (DeadlineExceeded, 7),
    (ViarteError, 1),
]

app = typer.Typer(
    name="viarte",
    help="Viarte Studio: generate, swap faces, edit and render video over the gRPC mesh.",
    epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
api_keys_app = typer.Typer(help="API keys for partner backends.", no_args_is_help=True)
assets_app = typer.Typer(help="Images, videos and audio in storage.", no_args_is_help=True)
jobs_app = typer.Typer(help="Generation, face swap, render and upscale jobs.", no_args_is_help=True)
projects_app = typer.Typer(help="Saved editor projects.", no_args_is_help=True)
assistant_app = typer.Typer(help="Magic Prompt and the editor assistant.", no_args_is_help=True)
users_app = typer.Typer(help="User administration (admins only).", no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(assets_app, name="assets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(projects_app, name="projects")
app.add_typer(assistant_app, name="assistant")
app.add_typer(users_app, name="users")

JOB_KINDS = ("generation", "face_swap", "render", "upscale")
F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------
# Context: endpoints, credentials, output
# ---------------------------------------------------------------------------------------------
@dataclass
class Ctx:
    json: bool
    profile: Profile
    endpoints: Endpoints
    state_dir: Path
    api_key: str | None
    timeout: float
    tls: TlsConfig | None
    gateway_url: str = ""
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True))
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            session = self.profile.session(self.endpoints.auth)
            self._client = Client(
                self.endpoints,
                api_key=self.api_key,
                tokens=session.tokens if session and not self.api_key else None,
                tls=self.tls,
                timeout=self.timeout,
                on_tokens=self._save_tokens,
            )
        return self._client

    def _save_tokens(self, tokens: Tokens) -> None:
        session = self.profile.session(self.endpoints.auth)
        if session is not None:
            session.tokens = tokens
            self.profile.save()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- output -----------------------------------------------------------------------------
    def emit(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """JSON on stdout with --json, else the human rendering."""
        if self.json:
            typer.echo(json.dumps(_jsonable(data), indent=2, sort_keys=True))
        elif human is not None:
            human()
        else:
            self.out.print(_jsonable(data))

    def info(self, message: str) -> None:
        if not self.json:
            self.err.print(message)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return value


_CURRENT: contextvars.ContextVar[Ctx] = contextvars.ContextVar("viarte_cli_ctx")


def _ctx(ctx: typer.Context) -> Ctx:
    obj = ctx.find_root().obj
    assert isinstance(obj, Ctx)
    return obj


def _exit_code(exc: BaseException) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)


def handled(fn: F) -> F:
    """Maps SDK errors and Ctrl-C to messages and exit codes, the same under CliRunner and a shell."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c = _CURRENT.get(None)
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            if c is not None:
                c.err.print("[yellow]cancelled[/]")
            raise typer.Exit(130) from None
        except ViarteError as exc:
            _report(c, exc)
            raise typer.Exit(_exit_code(exc)) from None
        finally:
            if c is not None:
                c.close()

    return wrapper  # type: ignore[return-value]


def _report(c: Ctx | None, exc: ViarteError) -> None:
    if c is not None and c.json:
        typer.echo(json.dumps(exc.to_dict(), indent=2), err=True)
        return
    console = c.err if c is not None else Console(stderr=True)
    console.print(f"[bold red]error[/] {type(exc).__name__}: {exc.message or exc.code_name}", highlight=False)
    if exc.reason:
        console.print(f"  reason: {exc.reason}" + (f" ({exc.domain})" if exc.domain else ""), highlight=False)
    for v in exc.field_violations:
        console.print(f"  - {v.field}: {v.description}", highlight=False)
    if exc.retry_after is not None:
        console.print(f"  retry after {exc.retry_after:g}s", highlight=False)
    if isinstance(exc, Unauthenticated):
        console.print("  hint: `viarte login` (or pass --api-key)")
    if isinstance(exc, Unavailable) and c is not None:
        console.print(f"  hint: is the mesh up? `viarte status` (auth at {c.endpoints.auth})")


def fail(message: str) -> NoReturn:
    raise ClientError(message)


@app.callback()
def root(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e", envvar="VIARTE_ENDPOINT", help="One address for every service (e.g. Envoy at 127.0.0.1:8800).")] = None,
    auth_address: Annotated[str | None, typer.Option(envvar="VIARTE_AUTH_ADDRESS", help="Auth service address.")] = None,
    storage_address: Annotated[str | None, typer.Option(envvar="VIARTE_STORAGE_ADDRESS", help="Storage service address.")] = None,
    inference_address: Annotated[str | None, typer.Option(envvar="VIARTE_INFERENCE_ADDRESS", help="Inference service address.")] = None,
    render_address: Annotated[str | None, typer.Option(envvar="VIARTE_RENDER_ADDRESS", help="Render service address.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="VIARTE_API_KEY", help="Authenticate with an API key instead of a login.")] = None,
    config: Annotated[Path | None, typer.Option("--config", envvar="VIARTE_CONFIG", help="CLI state file (sessions).")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="The dev mesh's state folder (default: the mesh config's VIARTE_MESH_STATE_DIR, else ./var).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
    timeout: Annotated[float, typer.Option(help="Deadline of each call, in seconds.")] = 30.0,
    tls: Annotated[bool, typer.Option(help="Use TLS (system roots unless --ca-cert).")] = False,
    ca_cert: Annotated[Path | None, typer.Option(help="PEM roots for TLS.")] = None,
) -> None:
    state_dir = _state_dir(state_dir)
    profile = Profile.load(config or default_config_path())
    values: dict[str, str] = dict(profile.endpoints)
    gateway_url = ""
    running = mesh_endpoints(state_dir)
    if running is not None:
        values.update(running[0])
        gateway_url = running[1]
    base = Endpoints.from_mapping(values) if values else Endpoints()
    if endpoint:
        base = Endpoints.single(endpoint)
    explicit = {"auth": auth_address, "storage": storage_address, "inference": inference_address, "render": render_address}
    base = dataclasses.replace(base, **{k: v for k, v in explicit.items() if v})
    tls_config = TlsConfig.from_files(ca=ca_cert) if (tls or ca_cert) else None
    ctx.obj = Ctx(json_output, profile, base, state_dir, api_key, timeout, tls_config, gateway_url)
    _CURRENT.set(ctx.obj)  # for `handled`, which wraps the commands


# ---------------------------------------------------------------------------------------------
# The dev mesh
# ---------------------------------------------------------------------------------------------
def _state_dir(flag: Path | None) -> Path:
    """``--state-dir``, else the dev mesh config's: MeshConfig is the one reader of its variable
    (VIARTE_MESH_STATE_DIR), so the CLI and the runner it starts can never disagree on the folder."""
    if flag is not None:
        return flag.absolute()
    try:
        from services.kit.config import ConfigError, load_config
        from services.mesh.config import MeshConfig
    except ImportError:  # the SDK installed without the repository: there is no dev mesh to find
        return Path("var").absolute()
    try:
        return Path(load_config(MeshConfig).state_dir).absolute()
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def _mesh() -> Any:
    try:
        import services.mesh as mesh
    except ImportError as exc:
        fail(f"the dev mesh needs the repository checkout with the server dependencies ({exc})")
    return mesh


def _mesh_config(c: Ctx, **overrides: Any) -> Any:
    mesh = _mesh()
    from services.kit.config import load_config

    config = load_config(mesh.MeshConfig)
    values = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config, state_dir=str(c.state_dir.absolute()), **values)


@app.command()
@handled
def up(
    ctx: typer.Context,
    foreground: Annotated[bool, typer.Option(help="Run in this terminal until Ctrl-C.")] = False,
    models: Annotated[str | None, typer.Option(help="tiny (offline CPU models) or real (GPU weights).")] = None,
    free_ports: Annotated[bool | None, typer.Option(help="Pick free ports instead of the defaults.")] = None,
    gateway: Annotated[bool | None, typer.Option(help="Start Envoy (gRPC-Web + the editor).")] = None,
    s3: Annotated[bool | None, typer.Option(help="Start the embedded S3 server (SeaweedFS).")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Start only these services (repeatable).")] = None,
) -> None:
    """Start the local mesh: S3, every service that exists, Envoy; waits on health checks."""
    c = _ctx(ctx)
    if models not in (None, "tiny", "real"):
        fail("--models must be 'tiny' or 'real'")
    services = tuple(only) if only else None
    if services and not set(services) <= {"auth", "storage", "inference", "render"}:
        fail("--only takes auth, storage, inference or render")
    config = _mesh_config(c, models=models, free_ports=free_ports, gateway=gateway, s3=s3, services=services)
    mesh = _mesh()
    if foreground:
        c.info("starting the mesh (Ctrl-C stops it)…")
        mesh.run_foreground(config, ready=lambda state: _print_mesh(c, state))
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


@app.command()
@handled
def down(ctx: typer.Context) -> None:
    """Stop the local mesh (from any shell)."""
    c = _ctx(ctx)
    final = _mesh().stop(c.state_dir.absolute())
    c.emit({"stopped": final is not None}, lambda: c.out.print("stopped" if final else "no mesh recorded here"))


@app.command()
@handled
def status(ctx: typer.Context) -> None:
    """Show each process of the local mesh and whether it answers its health check."""
    c = _ctx(ctx)
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

    c.emit({"state": state.state, "endpoints": state.endpoints, "gateway_url": state.gateway_url,
            "processes": [dataclasses.asdict(r) for r in rows]}, human)  # fmt: skip
    if state.state != "ready":
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------
def _sign_in(c: Ctx, email: str, password: str, register: bool, display_name: str = "") -> Any:
    client = c.client()
    user = client.auth.register(email, password, display_name) if register else client.auth.login(email, password)
    creds = client.credentials
    c.profile.remember(c.endpoints.auth, Session(user.email, user.id, creds.tokens))
    return user


@app.command()
@handled
def login(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(prompt=True, help="Account email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="VIARTE_PASSWORD", help="Password.")],
) -> None:
    """Sign in; the session is saved in the CLI's config file and refreshed automatically."""
    c = _ctx(ctx)
    user = _sign_in(c, email, password, register=False)
    c.emit(user, lambda: c.out.print(f"signed in as {user.email} ({user.id})"))


@app.command()
@handled
def register(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(prompt=True, help="Account email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="VIARTE_PASSWORD")],
    display_name: Annotated[str, typer.Option(help="Name shown in the editor.")] = "",
) -> None:
    """Create an account and sign in."""
    c = _ctx(ctx)
    user = _sign_in(c, email, password, register=True, display_name=display_name)
    c.emit(user, lambda: c.out.print(f"registered and signed in as {user.email} ({user.id})"))


@app.command()
@handled
def logout(ctx: typer.Context) -> None:
    """Revoke this session and forget its tokens."""
    c = _ctx(ctx)
    if c.profile.session(c.endpoints.auth) is None:
        c.emit({"signed_out": False}, lambda: c.out.print("not signed in"))
        return
    try:
        c.client().auth.logout()
    finally:
        c.profile.forget(c.endpoints.auth)
    c.emit({"signed_out": True}, lambda: c.out.print("signed out"))


@app.command()
@handled
def refresh(ctx: typer.Context) -> None:
    """Rotate the saved session's tokens now (they also refresh on their own before expiry)."""
    c = _ctx(ctx)
    tokens = c.client().auth.refresh()
    c.emit({"access_expires_at": tokens.access_expires_at},
           lambda: c.out.print(f"refreshed; access token valid until {time.ctime(tokens.access_expires_at)}"))  # fmt: skip


@app.command()
@handled
def whoami(ctx: typer.Context) -> None:
    """The signed-in user (or the API key's owner) and the credential's scopes."""
    c = _ctx(ctx)
    me = c.client().auth.me()
    c.emit(me, lambda: c.out.print(f"{me.user.email} ({me.user.id}) role={_enum_name(me.user.role, 'ROLE_')} scopes={' '.join(me.scopes)}"))


@app.command("public-keys")
@handled
def public_keys(ctx: typer.Context) -> None:
    """The auth service's token verification keys (JWKS-like)."""
    c = _ctx(ctx)
    keys = c.client().auth.public_keys()

    def human() -> None:
        table = Table("kid", "alg", "kty", "not after")
        for k in keys.keys:
            table.add_row(k.kid, k.alg, k.kty, k.not_after.ToJsonString() if k.HasField("not_after") else "")
        c.out.print(table)

    c.emit(keys, human)


def _enum_name(value: int, prefix: str) -> str:
    from viarte.auth.v1 import auth_pb2

    for enum in (auth_pb2.Role,):
        try:
            return str(enum.Name(value)).removeprefix(prefix).lower()
        except ValueError:
            continue
    return str(value)


@users_app.command("list")
@handled
def users_list(ctx: typer.Context, page_size: int = 50) -> None:
    """All users."""
    c = _ctx(ctx)
    page = c.client().auth.list_users(page_size=page_size)

    def human() -> None:
        table = Table("id", "email", "role", "disabled")
        for u in page.items:
            table.add_row(u.id, u.email, _enum_name(u.role, "ROLE_"), "yes" if u.disabled else "")
        c.out.print(table)

    c.emit({"users": page.items, "next_page_token": page.next_page_token}, human)


@users_app.command("update")
@handled
def users_update(
    ctx: typer.Context, user_id: str,
    role: Annotated[str | None, typer.Option(help="user or admin")] = None,
    disabled: Annotated[bool, typer.Option("--disable", help="Disable the account (revokes its sessions).")] = False,
) -> None:
    """Change a user's role or disable the account."""
    c = _ctx(ctx)
    if role not in (None, "user", "admin"):
        fail("--role must be 'user' or 'admin'")
    user = c.client().auth.update_user(user_id, role=role, disabled=disabled)  # type: ignore[arg-type]
    c.emit(user, lambda: c.out.print(f"{user.email}: role={_enum_name(user.role, 'ROLE_')} disabled={user.disabled}"))


@api_keys_app.command("create")
@handled
def api_keys_create(
    ctx: typer.Context,
    name: str,
    scope: Annotated[list[str] | None, typer.Option("--scope", "-s", help="assets:read, assets:write, jobs:read, jobs:write, assistant")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds; 0 = never expires.")] = 0,
) -> None:
    """Create an API key; its secret is shown once."""
    c = _ctx(ctx)
    key, secret = c.client().api_keys.create(name, scope or [], ttl_seconds=ttl)
    c.emit({"api_key": key, "secret": secret},
           lambda: c.out.print(f"created {key.id} ({key.name}); secret (shown once):\n{secret}", highlight=False))  # fmt: skip


@api_keys_app.command("list")
@handled
def api_keys_list(ctx: typer.Context) -> None:
    """Your API keys (without secrets)."""
    c = _ctx(ctx)
    keys = c.client().api_keys.list()

    def human() -> None:
        table = Table("id", "name", "prefix", "scopes", "last used", "revoked")
        for k in keys:
            used = k.last_used_time.ToJsonString() if k.HasField("last_used_time") else ""
            table.add_row(k.id, k.name, k.prefix, " ".join(k.scopes), used, "yes" if k.revoked else "")
        c.out.print(table)

    c.emit({"api_keys": keys}, human)


@api_keys_app.command("revoke")
@handled
def api_keys_revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key."""
    c = _ctx(ctx)
    c.client().api_keys.revoke(key_id)
    c.emit({"revoked": key_id}, lambda: c.out.print(f"revoked {key_id}"))


# ---------------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------------
def _upload(c: Ctx, path: Path, *, presigned: bool = False, name: str | None = None) -> Any:
    if not path.is_file():
        fail(f"no such file: {path}")
    method: Literal["stream", "presigned"] = "presigned" if presigned else "stream"
    if c.json:
        return c.client().assets.upload(path, name=name, method=method)
    with TransferProgress(c.err, f"upload {path.name}") as bar:
        return c.client().assets.upload(path, name=name, method=method, progress=bar.callback)


def _asset_table(c: Ctx, assets: list[Any]) -> None:
    table = Table("id", "name", "kind", "size", "media")
    for a in assets:
        m = a.media
        media = f"{m.width}x{m.height}" if m.width else ""
        if m.duration_seconds:
            media += f" {m.duration_seconds:.2f}s"
        if m.fps:
            media += f" {m.fps:g}fps"
        table.add_row(a.id, a.name, str(a.kind), f"{a.size_bytes:,}", media.strip())
    c.out.print(table)


@assets_app.command("upload")
@handled
def assets_upload(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files to upload.")],
    presigned: Annotated[bool, typer.Option(help="PUT straight to S3 through a presigned URL.")] = False,
    name: Annotated[str | None, typer.Option(help="Asset name (one file only).")] = None,
) -> None:
    """Upload files (streamed through the storage service, or presigned)."""
    c = _ctx(ctx)
    if name and len(paths) > 1:
        fail("--name needs exactly one file")
    assets = [_upload(c, p, presigned=presigned, name=name) for p in paths]
    c.emit({"assets": assets}, lambda: _asset_table(c, assets))


@assets_app.command("list")
@handled
def assets_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="image, video or audio")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
) -> None:
    """Your assets, newest first."""
    c = _ctx(ctx)
    if kind not in (None, "image", "video", "audio"):
        fail("--kind must be image, video or audio")
    assets = []
    for asset in c.client().assets.list_all(kind=kind):  # type: ignore[arg-type]
        assets.append(asset)
        if len(assets) >= limit:
            break
    c.emit({"assets": assets}, lambda: _asset_table(c, assets))


@assets_app.command("info")
@handled
def assets_info(ctx: typer.Context, asset_id: str) -> None:
    """One asset's metadata and media facts."""
    c = _ctx(ctx)
    asset = c.client().assets.get(asset_id)
    c.emit(asset, lambda: c.out.print(_jsonable(asset)))


@assets_app.command("url")
@handled
def assets_url(
    ctx: typer.Context, asset_id: str,
    expire: Annotated[int, typer.Option(help="Seconds the URL stays valid; 0 = default.")] = 0,
    attachment: bool = False, thumbnail: bool = False,
) -> None:
    """A presigned download URL."""
    c = _ctx(ctx)
    url = c.client().assets.url(asset_id, expire_seconds=expire, attachment=attachment, thumbnail=thumbnail)
    c.emit({"url": url}, lambda: typer.echo(url))


@assets_app.command("download")
@handled
def assets_download(
    ctx: typer.Context,
    asset_id: str,
    dest: Annotated[Path | None, typer.Argument(help="File or folder (default: current folder).")] = None,
    thumbnail: bool = False,
    via_url: Annotated[bool, typer.Option(help="Download through a presigned URL instead of the gRPC stream.")] = False,
) -> None:
    """Download an asset."""
    c = _ctx(ctx)
    path = _download(c, asset_id, dest, thumbnail=thumbnail, via_url=via_url)
    c.emit({"path": path}, lambda: c.out.print(f"saved {path}"))


def _download(c: Ctx, asset_id: str, dest: Path | None, *, thumbnail: bool = False, via_url: bool = False) -> Path:
    method: Literal["stream", "url"] = "url" if via_url else "stream"
    if c.json:
        return c.client().assets.download(asset_id, dest, thumbnail=thumbnail, method=method)
    with TransferProgress(c.err, f"download {asset_id}") as bar:
        return c.client().assets.download(asset_id, dest, thumbnail=thumbnail, method=method, progress=bar.callback)


@assets_app.command("rm")
@handled
def assets_rm(ctx: typer.Context, asset_ids: list[str]) -> None:
    """Delete assets."""
    c = _ctx(ctx)
    for asset_id in asset_ids:
        c.client().assets.delete(asset_id)
    c.emit({"deleted": asset_ids}, lambda: c.out.print(f"deleted {len(asset_ids)} asset(s)"))


def _asset_ref(c: Ctx, value: str | None) -> str:
    """An existing asset id, or a local file to upload first."""
    if not value:
        return ""
    path = Path(value)
    if path.is_file():
        asset = _upload(c, path)
        c.info(f"uploaded {path} as {asset.id}")
        return str(asset.id)
    return value


# ---------------------------------------------------------------------------------------------
# Models, generation, face swap, render, upscale
# ---------------------------------------------------------------------------------------------
_TASK_NAMES = {generation_pb2.TASK_TEXT_TO_VIDEO: "t2v", generation_pb2.TASK_IMAGE_TO_VIDEO: "i2v"}


models_app = typer.Typer(help="The video models this deployment serves.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
@handled
def models(ctx: typer.Context) -> None:
    """The video models this deployment serves (`viarte models pull` downloads their weights)."""
    if ctx.invoked_subcommand is not None:
        return
    c = _ctx(ctx)
    found = c.client().generation.list_models()

    def human() -> None:
        table = Table("id", "family", "tasks", "tiny", "loaded", "default size", "frames", "steps")
        for m in found:
            lim = m.limits
            table.add_row(
                m.id, generation_pb2.ModelFamily.Name(m.family).removeprefix("MODEL_FAMILY_").lower(),
                ",".join(_TASK_NAMES.get(t, str(t)) for t in m.tasks), "yes" if m.tiny else "", "yes" if m.loaded else "",
                f"{lim.default_width}x{lim.default_height}", str(lim.default_frames), str(lim.default_steps),
            )
        c.out.print(table)

    c.emit({"models": found}, human)


@models_app.command(
    "pull", add_help_option=False, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def models_pull(ctx: typer.Context) -> None:
    """Download the served models' weights ahead of time, checksum-verified (server extras; see --help)."""
    try:  # lazily: the SDK itself never imports server code
        from services.inference.models.pull import main as pull_main
    except ImportError as exc:
        fail(f"`viarte models pull` runs next to the services (pip install 'viarte-studio[server,ml]'): {exc}")
    raise typer.Exit(pull_main(list(ctx.args)))


def _pick_model(c: Ctx, model: str | None, task: str) -> Any:
    wanted = generation_pb2.TASK_IMAGE_TO_VIDEO if task == "i2v" else generation_pb2.TASK_TEXT_TO_VIDEO
    available = c.client().generation.list_models()
    if model:
        found = next((m for m in available if m.id == model), None)
        return found if found is not None else generation_pb2.Model(id=model)
    for m in available:
        if wanted in m.tasks:
            return m
    fail(f"no model serves {task}; see `viarte models`")


def _run_job(c: Ctx, kind: str, params: Any, *, title: str, detach: bool, priority: int, download: Path | None) -> Any:
    jobs = c.client().jobs(kind)
    job = jobs.create(params, priority=priority)
    c.info(f"{kind} job {job.id} queued")
    if detach:
        c.emit(job, lambda: c.out.print(f"job {job.id} (watch it: viarte jobs watch {job.id})"))
        return job
    if c.json:
        final = jobs.wait(job.id, cancel_on_interrupt=True)
    else:
        try:
            with JobProgressView(c.err, title) as view:
                final = jobs.wait(job.id, on_progress=view.update, cancel_on_interrupt=True)
        except KeyboardInterrupt:
            c.err.print(f"[yellow]cancelled job {job.id}[/]")
            raise
    output = _result_asset(kind, final)
    saved = _download(c, output, download) if download is not None and output else None
    c.emit({"job": final, "output_asset_id": output, "downloaded": saved}, lambda: _print_result(c, kind, final, saved))
    return final


def _result_asset(kind: str, job: Any) -> str:
    result = job.result
    return str(result.asset_id if kind == "face_swap" else result.video_asset_id)


def _print_result(c: Ctx, kind: str, job: Any, saved: Path | None) -> None:
    c.out.print(f"[green]✓[/] {kind} job {job.id} succeeded → asset {_result_asset(kind, job)}")
    fields = json_format.MessageToDict(job.result, preserving_proto_field_name=True)
    for key, value in fields.items():
        c.out.print(f"  {key}: {value}", highlight=False)
    if saved is not None:
        c.out.print(f"  saved: {saved}")


@app.command()
@handled
def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to generate.")],
    model: Annotated[str | None, typer.Option(help="Model id (default: the first that serves the task).")] = None,
    image: Annotated[str | None, typer.Option(help="Image-to-video input: a file or an asset id.")] = None,
    task: Annotated[str | None, typer.Option(help="t2v or i2v (default: i2v with --image).")] = None,
    negative_prompt: Annotated[str, typer.Option(help="What to avoid.")] = "",
    width: int = 0, height: int = 0,
    frames: Annotated[int, typer.Option(help="Number of frames (0 = model default).")] = 0,
    fps: int = 0,
    steps: Annotated[int, typer.Option(help="Denoising steps (0 = model default).")] = 0,
    guidance: Annotated[float | None, typer.Option(help="Guidance scale.")] = None,
    seed: int | None = None,
    preview_every: Annotated[int, typer.Option(help="A JPEG preview every N steps.")] = 0,
    magic_prompt: Annotated[bool, typer.Option(help="Expand the prompt with the assistant first.")] = False,
    face_swap: Annotated[str | None, typer.Option(help="Swap this face (file or image asset id) into the video.")] = None,
    face_selector: Annotated[str, typer.Option(help="all, index or reference.")] = "all",
    face_index: int = 0,
    reference_face: Annotated[str | None, typer.Option(help="Reference face (file or asset) for --face-selector reference.")] = None,
    similarity: float = 0.0,
    motion_bucket: Annotated[int | None, typer.Option(help="SVD motion bucket id (1-255).")] = None,
    noise_aug: Annotated[float | None, typer.Option(help="SVD noise augmentation strength.")] = None,
    decode_chunk: Annotated[int, typer.Option(help="SVD frames decoded at once.")] = 0,
    flow_shift: Annotated[float | None, typer.Option(help="Wan scheduler flow shift.")] = None,
    guidance_2: Annotated[float | None, typer.Option(help="Wan 2.2 low-noise expert guidance.")] = None,
    priority: int = 0,
    detach: Annotated[bool, typer.Option(help="Queue and return without waiting.")] = False,
    download: Annotated[Path | None, typer.Option(help="Save the video here (file or folder).")] = None,
) -> None:
    """Generate a video from text (t2v) or from an image (i2v), optionally with a face swap."""
    c = _ctx(ctx)
    chosen_task = task or ("i2v" if image else "t2v")
    if chosen_task not in ("t2v", "i2v"):
        fail("--task must be t2v or i2v")
    if chosen_task == "i2v" and not image:
        fail("image-to-video needs --image")
    m = _pick_model(c, model, chosen_task)
    if magic_prompt:
        enhanced = c.client().assistant.enhance_prompt(prompt, family=m.family)
        prompt = enhanced.prompt
        negative_prompt = negative_prompt or enhanced.negative_prompt
        c.info(f"magic prompt: {prompt}")
    svd = {k: v for k, v in {"motion_bucket_id": motion_bucket, "noise_aug_strength": noise_aug}.items() if v is not None}
    if decode_chunk:
        svd["decode_chunk_size"] = decode_chunk
    wan = {k: v for k, v in {"flow_shift": flow_shift, "guidance_scale_2": guidance_2}.items() if v is not None}
    face = None
    if face_swap:
        face = face_swap_options(
            _asset_ref(c, face_swap), selector=face_selector, face_index=face_index,  # type: ignore[arg-type]
            reference_face_asset_id=_asset_ref(c, reference_face), similarity_threshold=similarity,
        )
    params = generation_parameters(
        model=m.id, prompt=prompt, task=chosen_task, negative_prompt=negative_prompt,  # type: ignore[arg-type]
        image_asset_id=_asset_ref(c, image), width=width, height=height, num_frames=frames, fps=fps,
        num_inference_steps=steps, guidance_scale=guidance, seed=seed, preview_every_n_steps=preview_every,
        face_swap=face, svd=svd or None, wan=wan or None,
    )
    _run_job(c, "generation", params, title=f"generate ({m.id})", detach=detach, priority=priority, download=download)


@app.command()
@handled
def faceswap(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Video or image to change: a file or an asset id.")],
    face: Annotated[str, typer.Option(help="The face to put in: a file or an image asset id.")],
    selector: Annotated[str, typer.Option(help="all, index or reference.")] = "all",
    face_index: int = 0,
    reference_face: Annotated[str | None, typer.Option(help="Face to replace (reference mode).")] = None,
    similarity: float = 0.0,
    output_name: str = "",
    priority: int = 0,
    detach: bool = False,
    download: Annotated[Path | None, typer.Option(help="Save the result here.")] = None,
) -> None:
    """Swap a face into a video or an image."""
    from viarte.inference.v1 import face_swap_pb2

    c = _ctx(ctx)
    options = face_swap_options(
        _asset_ref(c, face), selector=selector, face_index=face_index,  # type: ignore[arg-type]
        reference_face_asset_id=_asset_ref(c, reference_face), similarity_threshold=similarity,
    )
    params = face_swap_pb2.FaceSwapParameters(target_asset_id=_asset_ref(c, target), options=options, output_name=output_name)
    _run_job(c, "face_swap", params, title="face swap", detach=detach, priority=priority, download=download)


_QUALITY = {"draft": render_pb2.QUALITY_PRESET_DRAFT, "standard": render_pb2.QUALITY_PRESET_STANDARD, "high": render_pb2.QUALITY_PRESET_HIGH}
_CODEC = {"h264": render_pb2.VIDEO_CODEC_H264, "hevc": render_pb2.VIDEO_CODEC_HEVC}


@app.command()
@handled
def render(
    ctx: typer.Context,
    timeline: Annotated[Path, typer.Argument(help="Timeline file (.json, .yaml); asset ids '@file' are uploaded.")],
    quality: Annotated[str, typer.Option(help="draft, standard or high.")] = "standard",
    codec: Annotated[str, typer.Option(help="h264 or hevc.")] = "h264",
    width: int = 0, height: int = 0, fps: float = 0.0,
    upscale: Annotated[bool, typer.Option(help="Upscale x2 after rendering.")] = False,
    output_name: str = "",
    project_id: str = "",
    priority: int = 0,
    detach: bool = False,
    download: Annotated[Path | None, typer.Option(help="Save the MP4 here.")] = None,
) -> None:
    """Render a timeline to MP4."""
    c = _ctx(ctx)
    if quality not in _QUALITY or codec not in _CODEC:
        fail("--quality must be draft/standard/high and --codec h264/hevc")
    tl = load_timeline(timeline, upload=lambda p: str(_upload(c, p).id))
    params = render_pb2.RenderParameters(
        timeline=tl, quality=_QUALITY[quality], codec=_CODEC[codec], output_width=width, output_height=height,
        output_fps=fps, upscale=upscale, output_name=output_name, project_id=project_id,
    )
    _run_job(c, "render", params, title=f"render {timeline.name}", detach=detach, priority=priority, download=download)


@app.command()
@handled
def frame(
    ctx: typer.Context,
    timeline: Annotated[Path, typer.Argument(help="Timeline file.")],
    at: Annotated[float, typer.Option(help="Time in seconds.")] = 0.0,
    max_width: int = 0,
    out: Annotated[Path, typer.Option(help="Where to write the JPEG.")] = Path("frame.jpg"),
) -> None:
    """Render one frame of a timeline to a JPEG (the editor's scrubber preview)."""
    c = _ctx(ctx)
    tl = load_timeline(timeline, upload=lambda p: str(_upload(c, p).id))
    answer = c.client().render.frame(tl, at, max_width=max_width)
    out.write_bytes(answer.jpeg)
    c.emit({"path": out, "width": answer.width, "height": answer.height},
           lambda: c.out.print(f"saved {out} ({answer.width}x{answer.height})"))  # fmt: skip


@app.command()
@handled
def upscale(
    ctx: typer.Context,
    video: Annotated[str, typer.Argument(help="Video: a file or an asset id.")],
    tile_size: int = 0, tile_padding: int = 0,
    model: Annotated[str, typer.Option(help="Upscaler model id (default realesrgan-x2plus).")] = "",
    output_name: str = "",
    priority: int = 0,
    detach: bool = False,
    download: Annotated[Path | None, typer.Option(help="Save the MP4 here.")] = None,
) -> None:
    """Upscale a video x2 (Real-ESRGAN)."""
    c = _ctx(ctx)
    params = render_pb2.UpscaleParameters(
        video_asset_id=_asset_ref(c, video), scale=2, tile_size=tile_size, tile_padding=tile_padding, model=model,
        output_name=output_name,
    )
    _run_job(c, "upscale", params, title="upscale x2", detach=detach, priority=priority, download=download)


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------
def _find_job(c: Ctx, job_id: str, kind: str | None) -> tuple[str, Any]:
    kinds = [kind] if kind else list(JOB_KINDS)
    for k in kinds:
        if k not in JOB_KINDS:
            fail(f"--kind must be one of {', '.join(JOB_KINDS)}")
        try:
            return k, c.client().jobs(k).get(job_id)
        except NotFound:
            continue
        except Unavailable:
            if kind:
                raise
    raise NotFound(f"no job {job_id}", reason="JOB_NOT_FOUND")


def _job_row(kind: str, job: Any) -> list[str]:
    st = job.status
    created = st.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if st.HasField("create_time") else ""
    update = JobProgress.from_job(kind, job)
    return [job.id, kind, update.state.name.lower(), update.describe(), created]


@jobs_app.command("list")
@handled
def jobs_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="generation, face_swap, render or upscale.")] = None,
    state: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")] = None,
    limit: int = 50,
) -> None:
    """Your jobs of every kind, newest first."""
    c = _ctx(ctx)
    if kind is not None and kind not in JOB_KINDS:
        fail(f"--kind must be one of {', '.join(JOB_KINDS)}")
    try:
        st = JobState.parse(state) if state else None
    except KeyError:
        fail("--state must be queued, running, succeeded, failed or cancelled")
    found: list[tuple[str, Any]] = []
    for k in [kind] if kind else JOB_KINDS:
        try:
            found.extend((k, job) for job in c.client().jobs(k).list(state=st, page_size=limit).items)
        except (Unavailable, ViarteError) as exc:
            if kind or not isinstance(exc, Unavailable | NotFound):
                raise
            c.info(f"[dim]{k}: {exc.code_name} (service not running?)[/]")
    found.sort(key=lambda kj: kj[1].status.create_time.ToNanoseconds(), reverse=True)
    found = found[:limit]

    def human() -> None:
        table = Table("id", "kind", "state", "progress", "created")
        for k, job in found:
            table.add_row(*_job_row(k, job))
        c.out.print(table)

    c.emit({"jobs": [{"kind": k, "job": j} for k, j in found]}, human)


@jobs_app.command("get")
@handled
def jobs_get(ctx: typer.Context, job_id: str, kind: Annotated[str | None, typer.Option()] = None) -> None:
    """One job."""
    c = _ctx(ctx)
    k, job = _find_job(c, job_id, kind)
    c.emit({"kind": k, "job": job}, lambda: c.out.print(_jsonable(job)))


@jobs_app.command("watch")
@handled
def jobs_watch(
    ctx: typer.Context, job_id: str,
    kind: Annotated[str | None, typer.Option()] = None,
    after: Annotated[int, typer.Option(help="Resume after this event sequence number.")] = 0,
) -> None:
    """Follow a job's progress until it ends (Ctrl-C stops watching; the job goes on)."""
    c = _ctx(ctx)
    k, _job = _find_job(c, job_id, kind)
    updates = c.client().jobs(k).watch(job_id, after_sequence=after)
    last: JobProgress | None = None
    if c.json:
        for update in updates:
            last = update
            typer.echo(json.dumps({"sequence": update.sequence, "state": update.state.name, "stage": update.stage.name,
                                   "step": update.step, "total_steps": update.total_steps, "frame": update.frame,
                                   "total_frames": update.total_frames, "fraction": update.fraction,
                                   "message": update.message, "snapshot": update.snapshot}))  # fmt: skip
    else:
        with JobProgressView(c.err, f"{k} {job_id}") as view:
            for update in updates:
                last = update
                view.update(update)
    if last is not None and last.terminal and last.job is not None:
        if last.state is JobState.SUCCEEDED:
            if not c.json:
                _print_result(c, k, last.job, None)
        elif last.state is JobState.FAILED:
            from viarte.errors import from_job_error

            raise from_job_error(last.job.status.error, job=last.job)
        else:
            raise Cancelled(f"job {job_id} was cancelled", reason="JOB_CANCELLED")


@jobs_app.command("cancel")
@handled
def jobs_cancel(ctx: typer.Context, job_ids: list[str], kind: Annotated[str | None, typer.Option()] = None) -> None:
    """Cancel jobs (a finished job stays as it is)."""
    c = _ctx(ctx)
    out = []
    for job_id in job_ids:
        k, _ = _find_job(c, job_id, kind)
        job = c.client().jobs(k).cancel(job_id)
        out.append({"kind": k, "job": job})
        c.info(f"{job_id}: {JobState(job.status.state).name.lower()}")
    c.emit({"jobs": out}, lambda: None)


# ---------------------------------------------------------------------------------------------
# Projects and the assistant
# ---------------------------------------------------------------------------------------------
@projects_app.command("create")
@handled
def projects_create(ctx: typer.Context, title: str, timeline: Annotated[Path | None, typer.Option()] = None) -> None:
    """Create a project (optionally from a timeline file)."""
    c = _ctx(ctx)
    tl = load_timeline(timeline, upload=lambda p: str(_upload(c, p).id)) if timeline else None
    project = c.client().projects.create(title, tl)
    c.emit(project, lambda: c.out.print(f"project {project.id} ({project.title})"))


@projects_app.command("list")
@handled
def projects_list(ctx: typer.Context, page_size: int = 50) -> None:
    """Your projects, most recently updated first."""
    c = _ctx(ctx)
    page = c.client().projects.list(page_size=page_size)

    def human() -> None:
        table = Table("id", "title", "tracks", "updated")
        for p in page.items:
            table.add_row(p.id, p.title, str(len(p.timeline.tracks)), p.update_time.ToJsonString() if p.HasField("update_time") else "")
        c.out.print(table)

    c.emit({"projects": page.items}, human)


@projects_app.command("get")
@handled
def projects_get(ctx: typer.Context, project_id: str) -> None:
    """One project with its timeline."""
    c = _ctx(ctx)
    project = c.client().projects.get(project_id)
    c.emit(project, lambda: c.out.print(_jsonable(project)))


@projects_app.command("update")
@handled
def projects_update(
    ctx: typer.Context, project_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    timeline: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Change a project's title or timeline (fails with ABORTED if someone saved in between)."""
    c = _ctx(ctx)
    project = c.client().projects.get(project_id)
    fields = []
    if title is not None:
        project.title = title
        fields.append("title")
    if timeline is not None:
        project.timeline.CopyFrom(load_timeline(timeline, upload=lambda p: str(_upload(c, p).id)))
        fields.append("timeline")
    if not fields:
        fail("nothing to change: pass --title and/or --timeline")
    saved = c.client().projects.update(project, fields=fields)
    c.emit(saved, lambda: c.out.print(f"saved {saved.id} (etag {saved.etag})"))


@projects_app.command("rm")
@handled
def projects_rm(ctx: typer.Context, project_ids: list[str]) -> None:
    """Delete projects."""
    c = _ctx(ctx)
    for project_id in project_ids:
        c.client().projects.delete(project_id)
    c.emit({"deleted": project_ids}, lambda: c.out.print(f"deleted {len(project_ids)} project(s)"))


@assistant_app.command("status")
@handled
def assistant_status(ctx: typer.Context) -> None:
    """Whether the assistant is configured."""
    c = _ctx(ctx)
    st = c.client().assistant.status()
    c.emit(st, lambda: c.out.print(f"available ({st.model})" if st.available else f"unavailable: {st.reason}"))


@assistant_app.command("enhance")
@handled
def assistant_enhance(ctx: typer.Context, idea: str, max_words: int = 0) -> None:
    """Magic Prompt: turn a short idea into a detailed prompt."""
    c = _ctx(ctx)
    answer = c.client().assistant.enhance_prompt(idea, max_words=max_words)
    c.emit(answer, lambda: c.out.print(f"{answer.prompt}\n[dim]negative: {answer.negative_prompt}[/]"))


@assistant_app.command("chat")
@handled
def assistant_chat(ctx: typer.Context, message: str) -> None:
    """Ask the assistant; the answer streams in."""
    c = _ctx(ctx)
    parts: list[str] = []
    actions: list[Any] = []
    for msg in c.client().assistant.chat([("user", message)]):
        kind = msg.WhichOneof("payload")
        if kind == "delta":
            parts.append(msg.delta)
            if not c.json:
                c.out.print(msg.delta, end="")
        elif kind == "action":
            actions.append(msg.action)
    if not c.json:
        c.out.print()
        for action in actions:
            c.out.print(f"[cyan]proposed:[/] {action.summary}")
    else:
        c.emit({"answer": "".join(parts), "actions": actions})


# ---------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------
@app.command()
@handled
def demo(
    ctx: typer.Context,
    models: Annotated[str, typer.Option(help="tiny (offline, CPU) or real (GPU weights).")] = "tiny",
    output: Annotated[Path, typer.Option(help="Folder for the final MP4.")] = Path("."),
    keep_running: Annotated[bool, typer.Option(help="Leave the mesh up afterwards (for the editor).")] = False,
    free_ports: Annotated[bool, typer.Option(help="Run the mesh on free ports.")] = False,
) -> None:
    """The end-to-end tour: mesh up, register, upload, i2v + face swap, t2v, render, upscale, download."""
    from viarte.demo import run_demo

    c = _ctx(ctx)
    if models not in ("tiny", "real"):
        fail("--models must be 'tiny' or 'real'")
    config = _mesh_config(c, models=models, free_ports=free_ports)
    summary = run_demo(config, output=output, keep_running=keep_running, console=c.err if c.json else c.out)
    c.emit(summary, lambda: None)


# ---------------------------------------------------------------------------------------------
def _hoist_json(argv: list[str]) -> list[str]:
    """``--json`` is a global option; accept it anywhere on the line (before any ``--``)."""
    if "--json" not in argv:
        return argv
    stop = argv.index("--") if "--" in argv else len(argv)
    if "--json" not in argv[:stop]:
        return argv
    rest = [a for i, a in enumerate(argv) if not (a == "--json" and i < stop)]
    return ["--json", *rest]


def main(argv: list[str] | None = None) -> None:
    """The ``viarte`` entry point (Typer in standalone mode: usage errors exit 2)."""
    args = _hoist_json(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="viarte")

if __name__ == "__main__":
    main()
