"""Identity: ``register``, ``login``, ``logout``, ``refresh``, ``whoami``, ``public-keys``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from viarte.cli.common import Ctx, NewPassword, Password, app, context, enum_name, handled
from viarte.cli.profile import Session


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
    password: Password,
) -> None:
    """Sign in; the session is saved in the CLI's config file and refreshed automatically."""
    c = context(ctx)
    user = _sign_in(c, email, password, register=False)
    c.emit(user, lambda: c.out.print(f"signed in as {user.email} ({user.id})"))


@app.command()
@handled
def register(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(prompt=True, help="Account email.")],
    password: NewPassword,
    display_name: Annotated[str, typer.Option(help="Name shown in the editor.")] = "",
) -> None:
    """Create an account and sign in."""
    c = context(ctx)
    user = _sign_in(c, email, password, register=True, display_name=display_name)
    c.emit(user, lambda: c.out.print(f"registered and signed in as {user.email} ({user.id})"))


@app.command()
@handled
def logout(ctx: typer.Context) -> None:
    """Revoke this session and forget its tokens."""
    c = context(ctx)
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
    c = context(ctx)
    tokens = c.client().auth.refresh()
    c.emit({"access_expires_at": tokens.access_expires_at},
           lambda: c.out.print(f"refreshed; access token valid until {time.ctime(tokens.access_expires_at)}"))  # fmt: skip


@app.command()
@handled
def whoami(ctx: typer.Context) -> None:
    """The signed-in user (or the API key's owner) and the credential's scopes."""
    c = context(ctx)
    me = c.client().auth.me()
    c.emit(me, lambda: c.out.print(f"{me.user.email} ({me.user.id}) role={enum_name(me.user.role, 'ROLE_')} scopes={' '.join(me.scopes)}"))


@app.command("public-keys")
@handled
def public_keys(ctx: typer.Context) -> None:
    """The auth service's token verification keys (JWKS-like)."""
    c = context(ctx)
    keys = c.client().auth.public_keys()

    def human() -> None:
        table = Table("kid", "alg", "kty", "not after")
        for k in keys.keys:
            table.add_row(k.kid, k.alg, k.kty, k.not_after.ToJsonString() if k.HasField("not_after") else "")
        c.out.print(table)

    c.emit(keys, human)
