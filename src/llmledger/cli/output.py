"""Shared CLI output: one-line errors with exit code 2, Rich tables, JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2."""
    typer.echo(f"error: {message}", err=True)  # plain: one line, never wrapped
    raise typer.Exit(2)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, default=_default, indent=2))
