"""``viarte users``: user administration (admins only)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from viarte.cli.common import app, context, enum_name, fail, handled
from viarte.type.v1 import limits_pb2

users_app = typer.Typer(help="User administration (admins only).", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("list")
@handled
def users_list(ctx: typer.Context, page_size: int = 50) -> None:
    """All users."""
    c = context(ctx)
    page = c.client().auth.list_users(page_size=page_size)

    def human() -> None:
        table = Table("id", "email", "role", "disabled")
        for u in page.items:
            table.add_row(u.id, u.email, enum_name(u.role, "ROLE_"), "yes" if u.disabled else "")
        c.out.print(table)

    c.emit({"users": page.items, "next_page_token": page.next_page_token}, human)


@users_app.command("update")
@handled
def users_update(
    ctx: typer.Context, user_id: str,
    role: Annotated[str | None, typer.Option(help="user or admin")] = None,
    disabled: Annotated[bool, typer.Option("--disable", help="Disable the account (revokes its sessions).")] = False,
    limits: Annotated[str | None, typer.Option(
        "--limits", help="The user's limits over all of their API keys: 'budget,creates/min,reads/min,concurrent' "
                         "(0 = none each), e.g. 1000,60,600,4.")] = None,
) -> None:
    """Change a user's role, limits, or disable the account."""
    c = context(ctx)
    if role not in (None, "user", "admin"):
        fail("--role must be 'user' or 'admin'")
    parsed = None
    if limits is not None:
        try:
            budget, creates, reads, concurrent = (int(x) for x in limits.split(","))
        except ValueError:
            fail("--limits must be four whole numbers: budget,creates/min,reads/min,concurrent")
        parsed = limits_pb2.Limits(monthly_credit_budget=budget, creates_per_minute=creates, reads_per_minute=reads,
                                   max_concurrent_jobs=concurrent)  # fmt: skip
    user = c.client().auth.update_user(user_id, role=role, disabled=disabled, limits=parsed)  # type: ignore[arg-type]
    c.emit(user, lambda: c.out.print(f"{user.email}: role={enum_name(user.role, 'ROLE_')} disabled={user.disabled}"))
