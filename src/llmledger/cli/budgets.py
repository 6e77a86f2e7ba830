"""`llmledger budgets …` and `llmledger worker`."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from pydantic import ValidationError
from rich import box
from rich.table import Table

from llmledger.accounts.service import organization_named
from llmledger.alerts.worker import run_once
from llmledger.budgets import service
from llmledger.budgets.backend import make_store
from llmledger.budgets.schemas import BudgetIn, BudgetOut, BudgetPatch
from llmledger.cli.admin import database
from llmledger.cli.output import console, fail, print_json
from llmledger.core.money import round_for_display
from llmledger.kit.db import make_engine, make_sessionmaker
from llmledger.kit.migrate import upgrade_database
from llmledger.kit.settings import get_settings

budgets_app = typer.Typer(help="Budgets: limits, thresholds, status.", no_args_is_help=True)


def _money(option: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"{option}: not an amount: {text!r}")
    if not value.is_finite() or value < 0:
        fail(f"{option}: must be a non-negative amount of USD")
    return value


def _thresholds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--thresholds: expected whole percents like 75,90,100, got {text!r}")


def _validated(
    model: type[BudgetIn] | type[BudgetPatch], **fields: object
) -> BudgetIn | BudgetPatch:
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "budget"
        message = str(first["msg"]).removeprefix("Value error, ")
        fail(f"--{where.replace('_', '-')}: {message}")


@budgets_app.command("create")
def create(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    scope: Annotated[
        str, typer.Option(help="org | team:NAME | department:NAME | user:EMAIL | key:KEY-ID")
    ],
    period: Annotated[str, typer.Option(help="daily or monthly")],
    limit: Annotated[str, typer.Option(help="USD per period")],
    action: Annotated[str, typer.Option(help="warn or block at 100%")] = "warn",
    thresholds: Annotated[str | None, typer.Option(help="alert percents, e.g. 75,90,100")] = None,
    max_tokens_per_prompt: Annotated[int | None, typer.Option(help="input + max output")] = None,
    notify: Annotated[list[str] | None, typer.Option(help="email for alerts (repeatable)")] = None,
) -> None:
    """Create a budget for a scope."""
    if period not in ("daily", "monthly"):
        fail(f"--period: must be daily or monthly, got {period!r}")
    if action not in ("warn", "block"):
        fail(f"--action: must be warn or block, got {action!r}")
    amount = _money("--limit", limit)
    body = _validated(
        BudgetIn,
        scope=scope,
        daily_limit=amount if period == "daily" else None,
        monthly_limit=amount if period == "monthly" else None,
        action=action,
        thresholds=_thresholds(thresholds),
        max_tokens_per_prompt=max_tokens_per_prompt,
        notify_emails=notify or None,
    )
    with database() as session:
        organization = organization_named(session, org)
        budget = service.create_budget(session, organization.id, body)  # type: ignore[arg-type]
        console.print(f"budget {budget.id} created for {scope}: {period} ${amount}, {action}")


@budgets_app.command("update")
def update(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    budget_id: Annotated[int, typer.Argument(help="budget id")],
    period: Annotated[str | None, typer.Option(help="daily or monthly: the limit to set")] = None,
    limit: Annotated[str | None, typer.Option(help="USD per period; 'none' removes it")] = None,
    action: Annotated[str | None, typer.Option(help="warn or block")] = None,
    thresholds: Annotated[str | None, typer.Option(help="alert percents")] = None,
) -> None:
    """Change a budget's limit, action or thresholds."""
    fields: dict[str, object] = {}
    if limit is not None:
        if period not in ("daily", "monthly"):
            fail("--period: give daily or monthly with --limit")
        fields[f"{period}_limit"] = None if limit.lower() == "none" else _money("--limit", limit)
    if action is not None:
        fields["action"] = action
    if thresholds is not None:
        fields["thresholds"] = _thresholds(thresholds)
    try:
        body = BudgetPatch(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
    with database() as session:
        organization = organization_named(session, org)
        service.update_budget(session, organization.id, budget_id, body, make_store(get_settings()))
        console.print(f"budget {budget_id} updated")


@budgets_app.command("delete")
def delete(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    budget_id: Annotated[int, typer.Argument(help="budget id")],
) -> None:
    """Delete a budget."""
    with database() as session:
        service.delete_budget(session, organization_named(session, org).id, budget_id)
        console.print(f"budget {budget_id} deleted")


@budgets_app.command("allocate")
def allocate(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    budget_id: Annotated[int, typer.Argument(help="team budget id")],
    user: Annotated[str, typer.Option(help="member's email")],
    limit: Annotated[str, typer.Option(help="USD per month")],
) -> None:
    """Give a member a monthly share of a team budget."""
    amount = _money("--limit", limit)
    with database() as session:
        organization = organization_named(session, org)
        store = make_store(get_settings())
        service.set_allocation(session, organization.id, budget_id, user, amount, None, store)
        console.print(f"{user} gets ${amount} a month of budget {budget_id}")


@budgets_app.command("status")
def status(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Spent, reserved, remaining and forecast of every budget."""
    with database() as session:
        organization = organization_named(session, org)
        store = make_store(get_settings())
        budgets = service.list_budgets(session, organization.id)
        found = service.budget_status(
            session, store, organization.id, organization.time_zone, budgets
        )
    if as_json:
        print_json([b.model_dump(mode="json") for b in found])
        return
    _print_status(found)


def _print_status(found: list[BudgetOut]) -> None:
    """A compact table: dollars and cents, spent including holds, hard budgets marked "!"
    (`--json` has every figure)."""
    table = Table(title="budgets (USD; ! = blocks at 100%)", box=box.SIMPLE_HEAD)
    for column in ("id", "scope", "limit", "spent", "left", "used", "resets", "forecast"):
        table.add_column(column, justify="left" if column == "scope" else "right")

    def usd(amount: Decimal) -> str:
        return f"{round_for_display(amount, 2):,}"

    for budget in found:
        members = {a.id: a.user for a in budget.allocations}
        for line in budget.status:
            who = budget.scope
            if line.allocation_id is not None:
                who += " / " + members.get(line.allocation_id, str(line.allocation_id))
            used = f"{line.percent_used:.0f}%"
            if line.percent_used >= 100:
                used = f"[red]{used}[/]"
            elif line.percent_used >= 75:
                used = f"[yellow]{used}[/]"
            per = "day" if line.period == "daily" else "mo"
            table.add_row(
                f"{budget.id}{'!' if budget.action == 'block' else ''}",
                who,
                f"{usd(line.limit)}/{per}",
                usd(line.spent + line.reserved),  # held amounts count as spent until settled
                usd(line.remaining),
                used,
                line.period_end.strftime("%b %d %H:%M"),
                usd(line.forecast_spend),
            )
    console.print(table)


def worker(
    once: Annotated[bool, typer.Option(help="run one pass and exit")] = False,
) -> None:
    """Run background work: alert deliveries and expiry of stale reservations."""
    settings = get_settings()
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    store = make_store(settings)
    console.print("llmledger worker running" + (" one pass" if once else ""))
    try:
        while True:
            done = run_once(sessions, store, settings)
            if once:
                console.print(done)
                return
            time.sleep(settings.worker_interval_seconds)
    finally:
        engine.dispose()
