"""The official anthropic SDK, pointed at llmledger, works unchanged; cache tokens are
normalised (Anthropic reports them outside input_tokens) and charged once."""

from __future__ import annotations

import time
from decimal import Decimal

import anthropic
import httpx
import pytest

from tests.conftest import Tenant
from tests.gateway.conftest import Gateway
from tests.gateway.fake_upstream import ANTHROPIC_USAGE

MESSAGES = [{"role": "user", "content": "Say something about budgets."}]
TOTAL_INPUT = (
    ANTHROPIC_USAGE["input_tokens"]
    + ANTHROPIC_USAGE["cache_read_input_tokens"]
    + ANTHROPIC_USAGE["cache_creation_input_tokens"]
)


def sdk(gateway: Gateway, caller: Tenant, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url, api_key=caller.key, default_headers=headers, max_retries=0
    )


def events(gateway: Gateway, caller: Tenant, n: int = 1) -> list[dict[str, object]]:
    gateway.flush()
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(f"{gateway.url}/api/v1/usage", headers=caller.headers).json()["events"]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_message_is_recorded_with_cache_tokens_inside_input(
    gateway: Gateway, caller: Tenant
) -> None:
    client = sdk(gateway, caller, **{"x-llmledger-team": "research"})
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=1000, system="Be brief.", messages=MESSAGES
    )
    message = raw.parse()
    assert message.content[0].text.startswith("Budgets hold")
    [event] = events(gateway, caller)
    assert event["provider"] == "anthropic" and event["team"] == "research"
    assert event["input_tokens"] == TOTAL_INPUT
    assert event["cached_input_tokens"] == ANTHROPIC_USAGE["cache_read_input_tokens"]
    assert event["cache_write_tokens"] == ANTHROPIC_USAGE["cache_creation_input_tokens"]
    cost = {k: Decimal(v) for k, v in event["cost"].items()}
    assert cost["cached_input"] < cost["input"] * 5  # cache reads at the cheap price
    assert cost["total"] == Decimal(raw.headers["x-llmledger-cost"])


def test_stream_is_relayed_and_recorded(gateway: Gateway, caller: Tenant) -> None:
    with sdk(gateway, caller).messages.stream(
        model="claude-sonnet-4-6", max_tokens=1000, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "Budgets hold under concurrency, and alerts fire once."
    [event] = events(gateway, caller)
    assert event["output_tokens"] == 300 and event["input_tokens"] == TOTAL_INPUT
    assert Decimal(event["cost"]["total"]) > 0


def test_a_broken_stream_is_charged_for_what_was_delivered(
    gateway: Gateway, caller: Tenant
) -> None:
    import httpx2  # the anthropic SDK's own HTTP client

    broken = (httpx.HTTPError, httpx2.HTTPError, anthropic.APIError)
    with (
        pytest.raises(broken),
        sdk(gateway, caller).messages.stream(
            model="claude-sonnet-4-6", max_tokens=1000, messages=MESSAGES, stop_sequences=["BREAK"]
        ) as stream,
    ):
        "".join(stream.text_stream)
    [event] = events(gateway, caller)
    assert event["status"] == "cancelled"
    assert 0 < event["output_tokens"] < 20 and Decimal(event["cost"]["total"]) > 0


def test_blocked_call_gets_anthropics_error_shape(gateway: Gateway, caller: Tenant) -> None:
    httpx.post(
        f"{gateway.url}/api/v1/budgets",
        json={"scope": "team:research", "monthly_limit": "0.0001", "action": "block"},
        headers=caller.headers,
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk(gateway, caller, **{"x-llmledger-team": "research"}).messages.create(
            model="claude-sonnet-4-6", max_tokens=1000, messages=MESSAGES
        )
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "team 'research'" in str(caught.value)


def test_concurrent_calls_never_overspend_a_hard_budget(gateway: Gateway, caller: Tenant) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Each call holds its worst case (1000 output tokens); 0.05 admits only some of 40.
    httpx.post(
        f"{gateway.url}/api/v1/budgets",
        json={"scope": "organization", "daily_limit": "0.05", "action": "block"},
        headers=caller.headers,
    )
    client = sdk(gateway, caller)

    def call(_: int) -> bool:
        try:
            client.messages.create(model="claude-3-5-haiku", max_tokens=1000, messages=MESSAGES)
        except anthropic.RateLimitError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        allowed = sum(pool.map(call, range(40)))
    recorded = events(gateway, caller, allowed)
    spent = sum(Decimal(e["cost"]["total"]) for e in recorded)
    assert 0 < allowed < 40 and len(recorded) == allowed
    assert spent <= Decimal("0.05")


def test_token_counting_passes_through_and_is_not_charged(gateway: Gateway, caller: Tenant) -> None:
    client = sdk(gateway, caller)
    counted = client.messages.count_tokens(model="claude-sonnet-4-5", messages=MESSAGES * 3)
    assert counted.input_tokens == 21  # the upstream's own answer
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway.url, api_key="llk_nope", max_retries=0
        ).messages.count_tokens(model="claude-sonnet-4-5", messages=MESSAGES)
    client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    assert len(events(gateway, caller, 1)) == 1  # only the message, not the counting
