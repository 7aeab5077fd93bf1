"""``viarte webhooks``: endpoints that receive job.succeeded / job.failed / job.cancelled."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from viarte.cli.common import app, context, handled

webhooks_app = typer.Typer(help="Webhook endpoints and their delivery logs.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


def _state(value: int) -> str:
    from viarte.account.v1 import account_pb2

    return str(account_pb2.DeliveryState.Name(value)).removeprefix("DELIVERY_STATE_").lower()


@webhooks_app.command("create")
@handled
def webhooks_create(
    ctx: typer.Context, url: str,
    event: Annotated[list[str] | None, typer.Option("--event", "-e", help="Repeatable: job.succeeded, job.failed, job.cancelled; default: all.")] = None,
) -> None:  # fmt: skip
    """Register an endpoint; its signing secret is shown once."""
    c = context(ctx)
    endpoint = c.client().webhooks.create(url, event or [])
    c.emit(endpoint, lambda: c.out.print(f"created {endpoint.id} -> {endpoint.url}; secret (shown once):\n{endpoint.secret}",
                                         highlight=False))  # fmt: skip


@webhooks_app.command("list")
@handled
def webhooks_list(ctx: typer.Context, page_size: int = 50) -> None:
    """Your endpoints (without secrets)."""
    c = context(ctx)
    page = c.client().webhooks.list(page_size=page_size)

    def human() -> None:
        table = Table("id", "url", "events", "disabled")
        for e in page.items:
            table.add_row(e.id, e.url, " ".join(e.event_types) or "all", e.disabled_reason or ("yes" if e.disabled else ""))
        c.out.print(table)

    c.emit({"endpoints": page.items, "next_page_token": page.next_page_token}, human)


@webhooks_app.command("delete")
@handled
def webhooks_delete(ctx: typer.Context, endpoint_id: str) -> None:
    """Delete an endpoint (its pending deliveries are dropped)."""
    c = context(ctx)
    c.client().webhooks.delete(endpoint_id)
    c.emit({"deleted": endpoint_id}, lambda: c.out.print(f"deleted {endpoint_id}"))


@webhooks_app.command("rotate")
@handled
def webhooks_rotate(ctx: typer.Context, endpoint_id: str) -> None:
    """A new signing secret; the old one keeps signing during the overlap."""
    c = context(ctx)
    rotated = c.client().webhooks.rotate(endpoint_id)
    until = rotated.previous_secret_expire_time.ToJsonString()
    c.emit(rotated, lambda: c.out.print(f"new secret (shown once; the old one signs too until {until}):\n"
                                        f"{rotated.endpoint.secret}", highlight=False))  # fmt: skip


@webhooks_app.command("enable")
@handled
def webhooks_enable(ctx: typer.Context, endpoint_id: str) -> None:
    """Re-enable an endpoint disabled by a 410 answer (resend failed deliveries with `redeliver`)."""
    c = context(ctx)
    endpoint = c.client().webhooks.enable(endpoint_id)
    c.emit(endpoint, lambda: c.out.print(f"enabled {endpoint.id} -> {endpoint.url}", highlight=False))


@webhooks_app.command("deliveries")
@handled
def webhooks_deliveries(ctx: typer.Context, endpoint_id: str, page_size: int = 50) -> None:
    """An endpoint's deliveries with their attempts, newest first."""
    c = context(ctx)
    page = c.client().webhooks.deliveries(endpoint_id, page_size=page_size)

    def human() -> None:
        table = Table("id", "event", "job", "state", "attempts", "last status", "next retry")
        for d in page.items:
            retry = d.next_attempt_time.ToJsonString() if d.HasField("next_attempt_time") else ""
            table.add_row(d.id, d.event_type, d.job_id, _state(d.state), str(d.attempt_count),
                          str(d.last_status_code or ""), retry)  # fmt: skip
        c.out.print(table)

    c.emit({"deliveries": page.items, "next_page_token": page.next_page_token}, human)


@webhooks_app.command("redeliver")
@handled
def webhooks_redeliver(ctx: typer.Context, delivery_id: str) -> None:
    """Send a delivery again now (same webhook-id)."""
    c = context(ctx)
    delivery = c.client().webhooks.redeliver(delivery_id)
    c.emit(delivery, lambda: c.out.print(f"queued {delivery.id} again"))


@webhooks_app.command("test")
@handled
def webhooks_test(ctx: typer.Context, endpoint_id: str) -> None:
    """Send a signed webhook.test event to an endpoint (logged as a delivery: see `deliveries`)."""
    c = context(ctx)
    delivery = c.client().webhooks.send_test(endpoint_id)
    c.emit(delivery, lambda: c.out.print(f"queued test event {delivery.id}"))
