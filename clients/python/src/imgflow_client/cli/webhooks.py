"""`imgflow webhooks`: the tenant's webhooks with each one's circuit-breaker state, and
`imgflow webhooks enable ID` to re-enable one that was paused or disabled."""

from __future__ import annotations

import json
from datetime import datetime

import click

from imgflow_client.cli.common import Context, handled, jsonable, new_table, out, run_async
from imgflow_client.models import Webhook, WebhookEnabled

STATE_STYLE = {"active": "green", "paused": "yellow", "disabled": "red"}


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per webhook.")
@click.pass_context
@handled
def webhooks(ctx: click.Context, as_json: bool) -> None:
    """Webhooks: state (active, paused, disabled), since when, the last error and the
    deliveries waiting. `enable ID` re-enables a paused or disabled one."""
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    async def work() -> list[Webhook]:
        async with obj.client() as client:
            return await client.webhooks()

    hooks = run_async(work())
    if as_json:
        for hook in hooks:
            print(json.dumps(jsonable(hook)))
        return
    if not hooks:
        out.print("no webhooks")
        return
    table = new_table("webhook", "url", "state", "since", "failures", "pending", "last error")
    for hook in hooks:
        style = STATE_STYLE.get(hook.state, "")
        state = f"[{style}]{hook.state}[/]" if style else hook.state
        if hook.state == "paused" and hook.next_probe_at:
            state += f" (probe {_when(hook.next_probe_at)})"
        last = f"{hook.last_error} ({_when(hook.last_error_at)})" if hook.last_error else ""
        table.add_row(
            str(hook.id),
            hook.url,
            state,
            _when(hook.state_since),
            str(hook.consecutive_failures),
            str(hook.pending_deliveries)
            + (f" ({hook.backlog_dropped} dropped)" if hook.backlog_dropped else ""),
            last,
        )
    out.print(table)


@webhooks.command()
@click.argument("webhook_id")
@click.option(
    "--drop-backlog", is_flag=True, help="Drop its pending deliveries instead of sending them."
)
@click.option("--json", "as_json", is_flag=True, help="The API's JSON.")
@click.pass_obj
@handled
def enable(obj: Context, webhook_id: str, drop_backlog: bool, as_json: bool) -> None:
    """Re-enable a paused or disabled webhook; its backlog is delivered in order (or,
    with --drop-backlog, dropped)."""

    async def work() -> WebhookEnabled:
        async with obj.client() as client:
            return await client.enable_webhook(webhook_id, drop_backlog=drop_backlog)

    hook = run_async(work())
    if as_json:
        print(json.dumps(jsonable(hook)))
        return
    backlog = (
        f"{hook.dropped_deliveries} pending deliveries dropped"
        if drop_backlog
        else f"{hook.pending_deliveries} pending deliveries to send, in order"
    )
    out.print(f"{hook.id} is {hook.state}: {backlog}")
