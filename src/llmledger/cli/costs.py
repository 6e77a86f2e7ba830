"""Offline cost commands: estimate, cost, prices. They read the catalog shipped in the
package, so they work with no server and no network."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from llmledger.cli.output import console, fail, print_json
from llmledger.core.money import as_text, round_for_display
from llmledger.core.pricing import CostBreakdown, TokenUsage, UsageError, compute_cost
from llmledger.estimates.service import Prompt
from llmledger.estimates.service import estimate as estimate_prompt
from llmledger.kit.errors import ApiError
from llmledger.pricing.book import NO_ORG_PRICES, PriceBook
from llmledger.pricing.catalog import catalog_models
from llmledger.pricing.service import Pricer

prices_app = typer.Typer(help="The price catalog.", no_args_is_help=True)


@cache
def _book() -> PriceBook:
    return PriceBook.from_catalog_models(catalog_models())


def _cost_json(cost: CostBreakdown) -> dict[str, str]:
    return {k: as_text(v) for k, v in cost.as_dict().items()}


def _cost_table(title: str, cost: CostBreakdown) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("part")
    table.add_column("USD", justify="right")
    for part, amount in cost.as_dict().items():
        if amount or part in ("input", "output", "total"):
            table.add_row(part, f"{round_for_display(amount)}")
    return table


def _read_prompt(source: str | None, messages: Path | None) -> Prompt:
    if messages is not None:
        try:
            data = json.loads(messages.read_text())
        except (OSError, ValueError) as exc:
            fail(f"--messages: cannot read chat JSON from {messages}: {exc}")
        tools = None
        if isinstance(data, dict) and "messages" in data:  # a whole request body
            data, tools = data["messages"], data.get("tools")
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            fail("--messages: expected a JSON list of {role, content} objects")
        if tools is not None and not isinstance(tools, list):
            fail("--messages: 'tools' must be a list of tool definitions")
        return Prompt(messages=data, tools=tools)
    if source is None or source == "-":
        if source is None and sys.stdin.isatty():
            fail("give a FILE, '-' for standard input, or --messages FILE")
        return Prompt(text=sys.stdin.read())
    try:
        return Prompt(text=Path(source).read_text())
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")


def estimate(
    model: Annotated[str, typer.Option(help="model name, e.g. gpt-4o")],
    source: Annotated[str | None, typer.Argument(metavar="[FILE|-]", help="prompt text")] = None,
    provider: Annotated[str | None, typer.Option(help="provider id, e.g. openai")] = None,
    max_output_tokens: Annotated[int, typer.Option(min=0, help="output tokens to allow")] = 0,
    messages: Annotated[
        Path | None,
        typer.Option(help="chat messages JSON file, or a request body with messages and tools"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Count a prompt's tokens and estimate its cost before running it."""
    prompt = _read_prompt(source, messages)
    try:
        found = estimate_prompt(
            Pricer(_book(), NO_ORG_PRICES),
            prompt,
            model,
            provider=provider,
            max_output_tokens=max_output_tokens,
            at=datetime.now(UTC),
        )
    except (ApiError, ValueError) as exc:
        fail(exc.message if isinstance(exc, ApiError) else str(exc))
    if as_json:
        print_json(
            {
                "provider": found.provider,
                "model": found.model,
                "input_tokens": found.tokens.tokens,
                "output_tokens": found.output_tokens,
                "tokens_exact": found.tokens.exact,
                "cost": _cost_json(found.cost),
                "currency": "USD",
                "price_version": found.price_version,
                "alternatives": [
                    {
                        "provider": a.provider,
                        "model": a.model,
                        "input_tokens": a.input_tokens,
                        "cost": _cost_json(a.cost),
                        "saving": as_text(a.saving),
                    }
                    for a in found.alternatives
                ],
            }
        )
        return
    exact = "exact" if found.tokens.exact else f"estimate, ±{found.tokens.expected_error:.0%}"
    console.print(
        f"{found.provider}/{found.model}: {found.tokens.tokens} input tokens ({exact}), "
        f"{found.output_tokens} output tokens"
    )
    console.print(_cost_table(f"cost ({found.price_version})", found.cost))
    if found.alternatives:
        table = Table(title="cheaper models that fit")
        for column in ("provider", "model", "input tokens", "total USD", "saving USD"):
            table.add_column(column, justify="right" if "USD" in column else "left")
        for a in found.alternatives:
            table.add_row(
                a.provider,
                a.model,
                str(a.input_tokens),
                str(round_for_display(a.cost.total)),
                str(round_for_display(a.saving)),
            )
        console.print(table)


def cost(
    model: Annotated[str, typer.Option(help="model name")],
    input_tokens: Annotated[int, typer.Option(help="input tokens (incl. cached)")],
    output_tokens: Annotated[int, typer.Option(help="output tokens (incl. reasoning)")],
    provider: Annotated[str | None, typer.Option(help="provider id")] = None,
    cached_input_tokens: Annotated[int, typer.Option(help="cache-read tokens")] = 0,
    cache_write_tokens: Annotated[int, typer.Option(help="cache-write tokens")] = 0,
    reasoning_tokens: Annotated[int, typer.Option(help="reasoning tokens")] = 0,
    at: Annotated[str | None, typer.Option(help="ISO date-time; price in force then")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Price a usage with the catalog price in force at a moment."""
    moment = datetime.now(UTC)
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at: not an ISO date-time: {at!r}")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    try:
        usage = TokenUsage(
            input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens
        )
    except UsageError as exc:
        fail(f"--{exc.field.replace('_', '-')}: {exc.message}")
    pricer = Pricer(_book(), NO_ORG_PRICES)
    quote = pricer.quote(model, provider, moment)
    if quote is None:
        fail(f"--model: {model!r} is unpriced: no catalog price for it")
    breakdown = compute_cost(usage, quote.sheet)
    if as_json:
        print_json(_usage_json(quote.provider, quote.model, usage, breakdown, quote.version))
        return
    console.print(_cost_table(f"{quote.provider}/{quote.model} ({quote.version})", breakdown))


def _usage_json(
    provider: str, model: str, usage: TokenUsage, breakdown: CostBreakdown, version: str
) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost": _cost_json(breakdown),
        "currency": "USD",
        "price_version": version,
    }


@prices_app.command("list")
def prices_list(
    provider: Annotated[str | None, typer.Option(help="only this provider")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Current catalog prices (USD per million tokens)."""
    versions = sorted(
        _book().current_versions(datetime.now(UTC)), key=lambda v: (v.provider, v.model)
    )
    if provider:
        versions = [v for v in versions if v.provider == provider.lower()]
        if not versions:
            fail(f"--provider: no catalog prices for {provider!r}")
    if as_json:
        print_json(
            [
                {
                    "provider": v.provider,
                    "model": v.model,
                    "input_mtok": v.sheet.input if v.sheet else None,
                    "output_mtok": v.sheet.output if v.sheet else None,
                    "context_window": v.context_window,
                }
                for v in versions
            ]
        )
        return
    table = Table(title=f"{len(versions)} models, USD per million tokens")
    for column in ("provider", "model", "input", "cached", "output", "context"):
        table.add_column(column, justify="left" if column in ("provider", "model") else "right")
    for v in versions:
        s = v.sheet
        if s is None:
            continue
        table.add_row(
            v.provider,
            v.model,
            as_text(s.input),
            as_text(s.cached_input) if s.cached_input is not None else "-",
            as_text(s.output),
            str(v.context_window or "-"),
        )
    console.print(table)


@prices_app.command("show")
def prices_show(
    model: str,
    provider: Annotated[str | None, typer.Option(help="provider id")] = None,
) -> None:
    """A model's prices and their history."""
    found = _book().resolve(model, provider)
    if found is None:
        fail(f"MODEL: no catalog price for {model!r}")
    table = Table(title=f"{found[0]}/{found[1]}, USD per million tokens")
    for column in ("from", "input", "cached", "cache write", "output", "tiers"):
        table.add_column(column)
    for v in _book().history(*found):
        s = v.sheet
        if s is None:
            continue
        tiers = ", ".join(f">{t.above}: in {t.input} out {t.output}" for t in s.tiers) or "-"

        def show(p: Any) -> str:
            return as_text(p) if p is not None else "-"

        table.add_row(
            v.effective_from.date().isoformat(),
            show(s.input),
            show(s.cached_input),
            show(s.cache_write),
            show(s.output),
            tiers,
        )
    console.print(table)
