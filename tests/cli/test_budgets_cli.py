"""`llmledger budgets …` and `llmledger worker` on a fresh SQLite database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmledger.cli.main import app
from llmledger.kit.settings import get_settings

runner = CliRunner()


@pytest.fixture
def org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LLMLEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    assert (
        runner.invoke(app, ["orgs", "create", "acme", "--time-zone", "Europe/Berlin"]).exit_code
        == 0
    )
    yield "acme"
    get_settings.cache_clear()


def test_create_and_show_status(org: str) -> None:
    r = runner.invoke(
        app,
        [
            "budgets",
            "create",
            "--org",
            org,
            "--scope",
            "team:research",
            "--period",
            "monthly",
            "--limit",
            "250",
            "--action",
            "block",
            "--thresholds",
            "50,80,100",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["budgets", "create", "--org", org, "--scope", "org", "--period", "daily", "--limit", "40"],
    )
    assert r.exit_code == 0, r.output
    status = runner.invoke(app, ["budgets", "status", "--org", org, "--json"])
    assert status.exit_code == 0, status.output
    budgets = json.loads(status.stdout)
    by_scope = {b["scope"]: b for b in budgets}
    assert by_scope["team:research"]["thresholds"] == [50, 80, 100]
    assert by_scope["team:research"]["action"] == "block"
    assert Decimal(by_scope["organization"]["daily_limit"]) == 40
    line = by_scope["organization"]["status"][0]
    assert line["period"] == "daily" and Decimal(line["remaining"]) == 40
    table = runner.invoke(app, ["budgets", "status", "--org", org], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "team:research" in table.stdout


def test_update_allocate_and_delete(org: str) -> None:
    runner.invoke(
        app,
        [
            "budgets",
            "create",
            "--org",
            org,
            "--scope",
            "team:ml",
            "--period",
            "monthly",
            "--limit",
            "100",
        ],
    )
    budget_id = json.loads(
        runner.invoke(app, ["budgets", "status", "--org", org, "--json"]).stdout
    )[0]["id"]
    r = runner.invoke(
        app,
        [
            "budgets",
            "allocate",
            "--org",
            org,
            str(budget_id),
            "--user",
            "ana@acme.com",
            "--limit",
            "30",
        ],
    )
    assert r.exit_code == 0, r.output
    over = runner.invoke(
        app,
        [
            "budgets",
            "allocate",
            "--org",
            org,
            str(budget_id),
            "--user",
            "bo@acme.com",
            "--limit",
            "80",
        ],
    )
    assert over.exit_code == 2 and over.stderr.startswith("error:")
    r = runner.invoke(app, ["budgets", "update", "--org", org, str(budget_id), "--action", "block"])
    assert r.exit_code == 0, r.output
    shown = json.loads(runner.invoke(app, ["budgets", "status", "--org", org, "--json"]).stdout)[0]
    assert shown["action"] == "block" and shown["allocations"][0]["user"] == "ana@acme.com"
    assert runner.invoke(app, ["budgets", "delete", "--org", org, str(budget_id)]).exit_code == 0
    assert (
        json.loads(runner.invoke(app, ["budgets", "status", "--org", org, "--json"]).stdout) == []
    )


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--scope", "org", "--period", "monthly", "--limit", "-5"], "--limit"),
        (["--scope", "org", "--period", "weekly", "--limit", "5"], "--period"),
        (
            ["--scope", "org", "--period", "monthly", "--limit", "5", "--thresholds", "0,90"],
            "--thresholds",
        ),
        (
            ["--scope", "org", "--period", "monthly", "--limit", "5", "--thresholds", "75,1001"],
            "--thresholds",
        ),
        (["--scope", "planet:mars", "--period", "monthly", "--limit", "5"], "scope"),
        (
            ["--scope", "org", "--period", "monthly", "--limit", "5", "--action", "explode"],
            "--action",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(org: str, args: list[str], mentions: str) -> None:
    r = runner.invoke(app, ["budgets", "create", "--org", org, *args])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and mentions in lines[0]


def test_worker_runs_one_pass(org: str) -> None:
    r = runner.invoke(app, ["worker", "--once"])
    assert r.exit_code == 0, r.output
    assert "deliveries_sent" in r.stdout
