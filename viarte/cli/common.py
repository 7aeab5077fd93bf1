"""What every command group shares: the root app and its global options, the per-invocation
context (endpoints, credentials, output), JSON rendering, and the mapping of SDK errors to exit codes.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape

from viarte.cli.profile import Profile, default_config_path, mesh_endpoints
from viarte.client import Client
from viarte.credentials import Tokens
from viarte.errors import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    JobFailed,
    MissingScope,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    ViarteError,
)
from viarte.transport import Endpoints, TlsConfig

__all__ = ["EXIT_CODES", "Ctx", "app", "context", "enum_name", "fail", "handled", "jsonable"]

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
    epilog=__doc__.split("\n\n", 2)[1] if __doc__ else None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])


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
            typer.echo(json.dumps(jsonable(data), indent=2, sort_keys=True))
        elif human is not None:
            human()
        else:
            self.out.print(jsonable(data))

    def info(self, message: str) -> None:
        if not self.json:
            self.err.print(message)


def jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return value


_CURRENT: contextvars.ContextVar[Ctx] = contextvars.ContextVar("viarte_cli_ctx")


def context(ctx: typer.Context) -> Ctx:
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
    # Escaped: a message is text, and rich would take "[server,cli]" in it for markup and drop it.
    console.print(f"[bold red]error[/] {type(exc).__name__}: {escape(exc.message or exc.code_name)}", highlight=False)
    if exc.reason:
        console.print(f"  reason: {exc.reason}" + (f" ({exc.domain})" if exc.domain else ""), highlight=False)
    for v in exc.field_violations:
        console.print(f"  - {v.field}: {v.description}", highlight=False)
    if exc.retry_after is not None:
        console.print(f"  retry after {exc.retry_after:g}s", highlight=False)
    if isinstance(exc, Unauthenticated):
        console.print("  hint: `viarte login` (or pass --api-key)")
    if isinstance(exc, MissingScope):
        console.print(f"  hint: use a key created with `viarte api-keys create NAME -s {exc.scope}`", highlight=False)
    if isinstance(exc, Unavailable) and c is not None:
        console.print(f"  hint: is the mesh up? `viarte status` (auth at {c.endpoints.auth})")


def fail(message: str) -> NoReturn:
    raise ClientError(message)


# Where the dev mesh keeps its state when --state-dir is not given. The SDK cannot read the mesh's
# config (it never imports the dev tooling), so the dev tooling installs its reader here when it
# registers (MeshConfig stays the one reader of VIARTE_MESH_STATE_DIR); an SDK alone looks in ./var.
_default_state_dir: list[Callable[[], Path]] = [lambda: Path("var")]


def set_default_state_dir(reader: Callable[[], Path]) -> None:
    """Called by the dev tooling's entry point: ``reader()`` gives the mesh config's state folder."""
    _default_state_dir[0] = reader


# The password options of `login` and `register`, declared here with every other environment name
# the CLI reads (this module is the CLI's one reader of the environment).
Password = Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="VIARTE_PASSWORD", help="Password.")]
NewPassword = Annotated[
    str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="VIARTE_PASSWORD", help="Password.")
]


@app.callback()
def root(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e", envvar="VIARTE_ENDPOINT", help="One address for every service (e.g. Envoy at 127.0.0.1:8800).")] = None,
    auth_address: Annotated[str | None, typer.Option(envvar="VIARTE_AUTH_ADDRESS", help="Auth service address.")] = None,
    storage_address: Annotated[str | None, typer.Option(envvar="VIARTE_STORAGE_ADDRESS", help="Storage service address.")] = None,
    inference_address: Annotated[str | None, typer.Option(envvar="VIARTE_INFERENCE_ADDRESS", help="Inference service address.")] = None,
    render_address: Annotated[str | None, typer.Option(envvar="VIARTE_RENDER_ADDRESS", help="Render service address.")] = None,
    account_address: Annotated[str | None, typer.Option(envvar="VIARTE_ACCOUNT_ADDRESS", help="Account service address (usage, webhooks).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="VIARTE_API_KEY", help="Authenticate with an API key instead of a login.")] = None,
    config: Annotated[Path | None, typer.Option("--config", envvar="VIARTE_CONFIG", help="CLI state file (sessions).")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="The dev mesh's state folder (default: the dev tooling's VIARTE_MESH_STATE_DIR, else ./var).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
    timeout: Annotated[float, typer.Option(help="Deadline of each call, in seconds.")] = 30.0,
    tls: Annotated[bool, typer.Option(help="Use TLS (system roots unless --ca-cert).")] = False,
    ca_cert: Annotated[Path | None, typer.Option(help="PEM roots for TLS.")] = None,
) -> None:
    state_dir = (state_dir or _default_state_dir[0]()).absolute()
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
    explicit = {"auth": auth_address, "storage": storage_address, "inference": inference_address, "render": render_address,
                "account": account_address}
    base = dataclasses.replace(base, **{k: v for k, v in explicit.items() if v})
    tls_config = TlsConfig.from_files(ca=ca_cert) if (tls or ca_cert) else None
    ctx.obj = Ctx(json_output, profile, base, state_dir, api_key, timeout, tls_config, gateway_url)
    _CURRENT.set(ctx.obj)  # for `handled`, which wraps the commands


def enum_name(value: int, prefix: str) -> str:
    from viarte.auth.v1 import auth_pb2

    for enum in (auth_pb2.Role,):
        try:
            return str(enum.Name(value)).removeprefix(prefix).lower()
        except ValueError:
            continue
    return str(value)

