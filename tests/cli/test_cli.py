"""The `llmledger` command line, through Typer's runner."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmledger import count_messages, count_tokens, count_tools
from llmledger.cli.main import app
from llmledger.kit.settings import get_settings

runner = CliRunner()


def test_cost_json_has_the_documented_shape() -> None:
    r = runner.invoke(
        app,
        [
            "cost",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "500",
            "--cached-input-tokens",
            "200",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert {
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cost",
        "currency",
        "price_version",
    } <= set(body)
    cost = {k: Decimal(v) for k, v in body["cost"].items()}
    assert set(cost) >= {"input", "cached_input", "cache_write", "output", "reasoning", "total"}
    assert cost["total"] == sum(v for k, v in cost.items() if k != "total")
    assert cost["cached_input"] > 0 and body["currency"] == "USD"


def test_cost_uses_the_price_in_force_at_the_given_time() -> None:
    args = ["cost", "--model", "o3", "--input-tokens", "1000000", "--output-tokens", "0", "--json"]
    before = json.loads(runner.invoke(app, [*args, "--at", "2025-05-01T00:00:00Z"]).stdout)
    after = json.loads(runner.invoke(app, [*args, "--at", "2025-07-01"]).stdout)
    assert Decimal(before["cost"]["total"]) > Decimal(after["cost"]["total"])


@pytest.mark.parametrize(
    "args",
    [
        ["cost", "--model", "gpt-4o", "--input-tokens", "-1", "--output-tokens", "1"],
        ["cost", "--model", "gpt-4o", "--input-tokens", "ten", "--output-tokens", "1"],
        ["cost", "--model", "no-such-model", "--input-tokens", "1", "--output-tokens", "1"],
        [
            "cost",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "1",
            "--output-tokens",
            "1",
            "--at",
            "soon",
        ],
        ["estimate", "--model", "gpt-4o", "/no/such/file.txt"],
        ["prices", "show", "no-such-model"],
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str]) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")


def test_estimate_reads_a_file_and_stdin(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Explain budgets in one paragraph.\n")
    from_file = json.loads(
        runner.invoke(
            app,
            ["estimate", "--model", "gpt-4o", "--max-output-tokens", "300", "--json", str(prompt)],
        ).stdout
    )
    from_stdin = json.loads(
        runner.invoke(
            app,
            ["estimate", "--model", "gpt-4o", "--max-output-tokens", "300", "--json", "-"],
            input=prompt.read_text(),
        ).stdout
    )
    assert (
        from_file["input_tokens"] == from_stdin["input_tokens"] == count_tokens(prompt.read_text())
    )
    assert from_file["output_tokens"] == 300
    assert Decimal(from_file["cost"]["output"]) > 0


def test_estimate_counts_chat_messages(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Hi there"}]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(messages))
    r = runner.invoke(app, ["estimate", "--model", "gpt-4o", "--messages", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["input_tokens"] == count_messages(messages, "gpt-4o").tokens

    # A saved request body: its tools count too.
    tools = [{"type": "function", "function": {"name": "forecast", "parameters": {}}}]
    path.write_text(json.dumps({"model": "gpt-4o", "messages": messages, "tools": tools}))
    r = runner.invoke(app, ["estimate", "--model", "gpt-4o", "--messages", str(path), "--json"])
    body = json.loads(r.stdout)
    assert body["input_tokens"] == (
        count_messages(messages, "gpt-4o").tokens + count_tools(tools, "gpt-4o").tokens
    )
    assert body["tokens_exact"] is False
    path.write_text(json.dumps({"messages": messages, "tools": "forecast"}))
    bad = runner.invoke(app, ["estimate", "--model", "gpt-4o", "--messages", str(path)])
    assert bad.exit_code == 2 and "tools" in bad.stderr


def test_prices_list_and_show() -> None:
    listed = runner.invoke(app, ["prices", "list", "--provider", "anthropic", "--json"])
    assert listed.exit_code == 0
    assert all(p["provider"] == "anthropic" for p in json.loads(listed.stdout))
    shown = runner.invoke(app, ["prices", "show", "gpt-4o-2024-08-06"])
    assert shown.exit_code == 0 and "openai/gpt-4o" in shown.stdout


def test_orgs_and_keys_on_a_fresh_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMLEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    try:
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        created = runner.invoke(app, ["orgs", "create", "acme", "--time-zone", "Europe/Berlin"])
        assert created.exit_code == 0, created.output
        again = runner.invoke(app, ["orgs", "create", "acme"])
        assert again.exit_code == 2 and "already exists" in again.stderr
        bad_zone = runner.invoke(app, ["orgs", "create", "other", "--time-zone", "Mars/Base"])
        assert bad_zone.exit_code == 2
        key = runner.invoke(app, ["keys", "create", "--org", "acme"])
        assert key.exit_code == 0 and key.stdout.strip().startswith("llk_")
        missing = runner.invoke(app, ["keys", "create", "--org", "nobody"])
        assert missing.exit_code == 2

        providers = ["providers", "set", "--org", "acme"]
        # A key read from a file keeps its newline; it is stripped, not sent to the provider.
        assert runner.invoke(app, [*providers, "deepseek", "--api-key", "sk-ds\r\n"]).exit_code == 0
        bad_key = runner.invoke(app, [*providers, "groq", "--api-key", "gsk\x00x"])
        assert bad_key.exit_code == 2 and "control characters" in bad_key.stderr
        own = [*providers, "gpu-box", "--api-key", "x", "--base-url", "http://10.0.0.5:8000/v1/"]
        assert runner.invoke(app, own).exit_code == 0
        long_name = runner.invoke(
            app, [*providers, "a" * 21, "--api-key", "x", "--base-url", "http://h/v1"]
        )
        assert long_name.exit_code == 2 and "1-20" in long_name.stderr
        unknown = runner.invoke(app, [*providers, "gpu-box-2", "--api-key", "x"])
        assert unknown.exit_code == 2 and "base_url" in unknown.stderr
        listed = runner.invoke(app, ["providers", "list", "--org", "acme", "--json"])
        assert json.loads(listed.stdout) == [
            {"provider": "deepseek", "base_url": "https://api.deepseek.com/v1"},
            {"provider": "gpu-box", "base_url": "http://10.0.0.5:8000/v1"},
        ]
        assert "sk-ds" not in listed.stdout
        table = runner.invoke(app, ["providers", "list", "--org", "acme"])
        assert table.exit_code == 0 and "gpu-box" in table.stdout
        assert (
            runner.invoke(app, ["providers", "remove", "gpu-box", "--org", "acme"]).exit_code == 0
        )
        gone = runner.invoke(app, ["providers", "remove", "gpu-box", "--org", "acme"])
        assert gone.exit_code == 2 and "no gpu-box key" in gone.stderr
    finally:
        get_settings.cache_clear()
