"""Server and administration commands: serve, db upgrade, orgs, keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from sqlalchemy.orm import Session

from llmledger.accounts.service import create_api_key, create_organization, organization_named
from llmledger.cli.output import console, errors, fail, print_json
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.errors import ApiError
from llmledger.kit.migrate import upgrade_database
from llmledger.kit.settings import get_settings
from llmledger.pricing.repository import sync_catalog

db_app = typer.Typer(help="Database schema and price catalog.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="interface; default LLMLEDGER_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="port; default LLMLEDGER_PORT")] = None,
) -> None:
    """Serve the REST API (the default command)."""
    import uvicorn

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    console.print(f"llmledger serving on http://{host}:{port}  (API docs: /api/v1/docs)")
    uvicorn.run("llmledger.app:create_app", factory=True, host=host, port=port, log_level="info")


@contextmanager
def database() -> Iterator[Session]:
    """A committed unit of work on the configured database, migrated first."""
    url = get_settings().database_url
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            yield session
    except ApiError as exc:
        fail(exc.message)
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations and seed the price catalog (safe to run again)."""
    with database() as session:
        added = sync_catalog(session)
    console.print(f"database is up to date; {added} catalog price versions added")


@orgs_app.command("create")
def orgs_create(
    name: str,
    time_zone: Annotated[str, typer.Option(help="IANA time zone for budget periods")] = "UTC",
    plan: Annotated[str, typer.Option(help="free, teams or enterprise")] = "free",
) -> None:
    """Create an organization."""
    with database() as session:
        org = create_organization(session, name, time_zone, plan)
        console.print(
            f"organization {org.name!r} created (id {org.id}, {org.time_zone}, {org.plan})"
        )


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "default",
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    with database() as session:
        issued = create_api_key(session, organization_named(session, org), name)
        secret = issued.secret
    typer.echo(secret)
    errors.print("store this key now: it is not shown again", style="yellow")


providers_app = typer.Typer(help="Upstream LLM provider keys.", no_args_is_help=True)


@providers_app.command("set")
def providers_set(
    provider: Annotated[
        str,
        typer.Argument(
            help="openai, anthropic, deepseek, groq, mistral, x-ai, together, fireworks, "
            "openrouter, google, perplexity, cerebras, moonshotai; or a name of your own "
            "(an OpenAI-compatible server) with --base-url"
        ),
    ],
    org: Annotated[str, typer.Option("--org", help="organization name")],
    api_key: Annotated[str, typer.Option(help="the provider's API key (stored encrypted)")],
    base_url: Annotated[str | None, typer.Option(help="upstream base URL")] = None,
) -> None:
    """Store an organization's key for an upstream provider (never shown again)."""
    from llmledger.gateway.credentials import set_provider

    with database() as session:
        organization = organization_named(session, org)
        set_provider(session, get_settings(), organization.id, provider, api_key, base_url)
    console.print(
        f"{provider} key stored for {org}" + (f" (upstream {base_url})" if base_url else "")
    )


@providers_app.command("list")
def providers_list(
    org: Annotated[str, typer.Option("--org", help="organization name")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The organization's providers and where their calls go (keys are never shown)."""
    from llmledger.gateway.credentials import list_providers

    with database() as session:
        found = list_providers(session, get_settings(), organization_named(session, org).id)
    if as_json:
        print_json([{"provider": name, "base_url": url} for name, url in found])
        return
    table = Table(title=f"providers of {org}", box=box.SIMPLE_HEAD)
    table.add_column("provider")
    table.add_column("upstream")
    for name, url in found:
        table.add_row(name, url)
    console.print(table)


@providers_app.command("remove")
def providers_remove(
    provider: Annotated[str, typer.Argument(help="the provider whose key to delete")],
    org: Annotated[str, typer.Option("--org", help="organization name")],
) -> None:
    """Delete an organization's key for a provider; its calls are refused from then on."""
    from llmledger.gateway.credentials import remove_provider

    with database() as session:
        remove_provider(session, organization_named(session, org).id, provider)
    console.print(f"{provider} key removed for {org}")
