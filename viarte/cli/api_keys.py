"""``viarte api-keys``: API keys for partner backends."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from viarte.cli.common import app, context, handled
from viarte.scopes import SCOPES
from viarte.type.v1 import limits_pb2

api_keys_app = typer.Typer(help="API keys for partner backends.", no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")


@api_keys_app.command("create")
@handled
def api_keys_create(
    ctx: typer.Context,
    name: str,
    scope: Annotated[list[str] | None, typer.Option("--scope", "-s", help="Repeatable; one of " + ", ".join(SCOPES) + " (see `api-keys scopes`).")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds; 0 = never expires.")] = 0,
    budget: Annotated[int, typer.Option("--monthly-budget", help="Credits per month (UTC); 0 = no budget.")] = 0,
    creates: Annotated[int, typer.Option("--creates-per-minute", help="Job creates per minute; 0 = unlimited.")] = 0,
    reads: Annotated[int, typer.Option("--reads-per-minute", help="Job reads per minute; 0 = unlimited.")] = 0,
    concurrent: Annotated[int, typer.Option("--max-concurrent-jobs", help="Jobs queued or running at once; 0 = unlimited.")] = 0,
) -> None:
    """Create an API key; its secret is shown once. Optional budget and limits (issue 16)."""
    c = context(ctx)
    limits = limits_pb2.Limits(monthly_credit_budget=budget, creates_per_minute=creates, reads_per_minute=reads,
                               max_concurrent_jobs=concurrent)  # fmt: skip
    key, secret = c.client().api_keys.create(name, scope or [], ttl_seconds=ttl, limits=limits)
    c.emit({"api_key": key, "secret": secret},
           lambda: c.out.print(f"created {key.id} ({key.name}); secret (shown once):\n{secret}", highlight=False))  # fmt: skip


@api_keys_app.command("scopes")
@handled
def api_keys_scopes(ctx: typer.Context) -> None:
    """The scopes an API key can be granted, and what each allows."""
    c = context(ctx)

    def human() -> None:
        table = Table("scope", "allows")
        for name, allows in SCOPES.items():
            table.add_row(name, allows)
        c.out.print(table)

    c.emit({"scopes": [{"name": name, "allows": allows} for name, allows in SCOPES.items()]}, human)


@api_keys_app.command("list")
@handled
def api_keys_list(ctx: typer.Context) -> None:
    """Your API keys (without secrets)."""
    c = context(ctx)
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
    c = context(ctx)
    c.client().api_keys.revoke(key_id)
    c.emit({"revoked": key_id}, lambda: c.out.print(f"revoked {key_id}"))
