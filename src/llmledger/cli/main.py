"""`llmledger`: serve (the default), database, organizations, keys, estimates, prices."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from llmledger.cli import admin, budgets, costs


class OneLineErrors(TyperGroup):
    """Usage errors as one line on stderr with exit code 2, not a boxed help screen."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone_mode = kwargs.pop("standalone_mode", True)
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except typer.TyperException as exc:  # click's usage errors, vendored by typer
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            typer.echo(f"error: {message}", err=True)
            if standalone_mode:
                sys.exit(getattr(exc, "exit_code", 2))
            raise
        except typer.Abort:
            typer.echo("aborted", err=True)
            if standalone_mode:
                sys.exit(1)
            raise
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


app = typer.Typer(
    cls=OneLineErrors,
    help="llmledger: LLM token tracking and cost management.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.orgs_app, name="orgs")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.providers_app, name="providers")
app.add_typer(costs.prices_app, name="prices")
app.add_typer(budgets.budgets_app, name="budgets")
app.command("worker")(budgets.worker)
app.command("serve")(admin.serve)
app.command("estimate")(costs.estimate)
app.command("cost")(costs.cost)


@app.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """With no command, serve the API (like `llmledger serve`)."""
    if ctx.invoked_subcommand is None:
        admin.serve()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        sys.exit(130)
