"""The official openai SDK, pointed at llmledger, works unchanged; every call is recorded."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest

from tests.conftest import Tenant
from tests.gateway.conftest import Gateway
from tests.gateway.fake_upstream import OPENAI_USAGE, TRICKLED_WORDS

MESSAGES = [{"role": "user", "content": "Say something about budgets."}]


def sdk(gateway: Gateway, caller: Tenant, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=caller.key, default_headers=headers, max_retries=0
    )


def ledger(gateway: Gateway, caller: Tenant, expect: int = 0) -> list[dict[str, object]]:
    """The caller's recorded events, waiting for `expect` of them: a stream is handed to the
    recorder only after its last chunk has gone out, a moment after the client saw it."""
    import time

    deadline = time.monotonic() + 10
    while True:
        gateway.flush()
        events = httpx.get(f"{gateway.url}/api/v1/usage", headers=caller.headers).json()["events"]
        if len(events) >= expect or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


def test_completion_passes_through_and_is_recorded_with_its_cost(
    gateway: Gateway, caller: Tenant
) -> None:
    client = sdk(
        gateway, caller, **{"x-llmledger-user": "ana@acme.com", "x-llmledger-prompt-id": "p1"}
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=500
    )
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Budgets hold")
    assert Decimal(raw.headers["x-llmledger-cost"]) > 0
    [event] = ledger(gateway, caller, expect=1)
    assert (
        event["source"] == "gateway"
        and event["provider"] == "openai"
        and event["model"] == "gpt-4o"
    )
    assert event["input_tokens"] == OPENAI_USAGE["prompt_tokens"]
    assert event["cached_input_tokens"] == 1000 and event["reasoning_tokens"] == 100
    assert event["user"] == "ana@acme.com" and event["prompt_id"] == "p1"
    assert Decimal(event["cost"]["total"]) == Decimal(raw.headers["x-llmledger-cost"])
    assert raw.headers["x-llmledger-request-id"] == event["client_request_id"]
    assert raw.headers["x-llmledger-verdict"] == "allow"
    assert "x-llmledger-warning" not in raw.headers


def test_soft_budget_over_its_limit_lets_the_call_run_and_says_why(
    gateway: Gateway, caller: Tenant
) -> None:
    httpx.post(
        f"{gateway.url}/api/v1/budgets",
        json={"scope": "organization", "daily_limit": "0.000001", "action": "warn"},
        headers=caller.headers,
    ).raise_for_status()
    raw = sdk(gateway, caller).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=100
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-llmledger-verdict"] == "warn"
    assert "would be exceeded" in raw.headers["x-llmledger-warning"]
    assert Decimal(raw.headers["x-llmledger-budget-remaining"]) < 0
    assert len(ledger(gateway, caller, expect=1)) == 1


def test_provider_headers_reach_the_caller_and_cookies_do_not(
    gateway: Gateway, caller: Tenant
) -> None:
    client = sdk(gateway, caller)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse()._request_id == "req_fake_123"  # what users quote to OpenAI support
    assert raw.headers["x-ratelimit-remaining-requests"] == "4999"
    assert raw.headers["openai-processing-ms"] == "12"
    assert "set-cookie" not in raw.headers and "openai-organization" not in raw.headers
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as streamed:
        assert streamed.headers["x-request-id"] == "req_fake_123"
        assert "".join(streamed.iter_text()).endswith("data: [DONE]\n\n")
    failed = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": MESSAGES, "stop": ["FAIL"]},
        headers=caller.headers,
    )
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "req_failed_456"
    ledger(gateway, caller, expect=2)


def test_tools_offered_count_toward_the_tokens_per_prompt_limit(
    gateway: Gateway, caller: Tenant
) -> None:
    httpx.post(
        f"{gateway.url}/api/v1/budgets",
        json={"scope": "organization", "max_tokens_per_prompt": 400, "action": "block"},
        headers=caller.headers,
    ).raise_for_status()
    client = sdk(gateway, caller)
    tool = {
        "type": "function",
        "function": {
            "name": "search_the_archive",
            "description": "Searches every report the finance team has written. " * 20,
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=200)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=200, tools=[tool]
        )
    assert "tokens per prompt" in str(refused.value)
    assert len(ledger(gateway, caller, expect=1)) == 1  # the refused call was not sent


def test_a_budget_created_while_a_call_runs_is_charged_for_it(
    gateway: Gateway, caller: Tenant
) -> None:
    """The call's hold knows only the budgets of its admission; the one created meanwhile
    still gets the call's cost when it is recorded, and the first is not charged twice."""
    budgets = f"{gateway.url}/api/v1/budgets"
    monthly = {"scope": "organization", "monthly_limit": "50", "action": "block"}
    httpx.post(budgets, json=monthly, headers=caller.headers).raise_for_status()
    client = sdk(gateway, caller, **{"x-llmledger-team": "research"})
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(
            client.chat.completions.create,
            model="gpt-4o",
            messages=MESSAGES,
            max_tokens=100,
            stop=["SLOW"],  # the upstream takes 3 s
        )
        time.sleep(1)
        team = {"scope": "team:research", "daily_limit": "20", "action": "warn"}
        httpx.post(budgets, json=team, headers=caller.headers).raise_for_status()
        running.result()
    [event] = ledger(gateway, caller, expect=1)
    cost = Decimal(event["cost"]["total"])
    lines = httpx.get(budgets, headers=caller.headers).json()
    spent = sorted(Decimal(b["status"][0]["spent"]) for b in lines)
    reserved = [Decimal(b["status"][0]["reserved"]) for b in lines]
    assert spent == [cost, cost] and reserved == [0, 0]


def test_stream_is_relayed_and_recorded_from_the_usage_the_provider_sends(
    gateway: Gateway, caller: Tenant
) -> None:
    stream = sdk(gateway, caller).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Budgets hold under concurrency, and alerts fire once."
    assert all(c.usage is None for c in chunks)  # not asked for: the usage chunk is hidden
    [event] = ledger(gateway, caller, expect=1)
    assert event["output_tokens"] == OPENAI_USAGE["completion_tokens"]
    assert Decimal(event["cost"]["total"]) > 0  # a streamed call is never $0


@pytest.mark.parametrize("stops", [["TRICKLE"], ["TRICKLE", "CR"]], ids=["lf", "lone-cr"])
def test_stream_read_in_pieces_is_relayed_whole(
    gateway: Gateway, caller: Tenant, stops: list[str]
) -> None:
    """Upstream reads end mid-line and mid-character, with either line ending the format
    allows; events still reach the caller whole and the usage chunk the caller did not ask
    for is still hidden."""
    stream = sdk(gateway, caller).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stop=stops
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(TRICKLED_WORDS)
    assert all(c.usage is None for c in chunks)
    [event] = ledger(gateway, caller, expect=1)
    assert event["output_tokens"] == OPENAI_USAGE["completion_tokens"]


def test_stream_with_usage_requested_shows_it(gateway: Gateway, caller: Tenant) -> None:
    stream = sdk(gateway, caller).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert [c.usage.completion_tokens for c in stream if c.usage] == [300]


def test_a_broken_stream_is_charged_for_what_was_delivered(
    gateway: Gateway, caller: Tenant
) -> None:
    stream = sdk(gateway, caller).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stop=["BREAK"]
    )
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        list(stream)
    events = _wait_for_events(gateway, caller, 1)
    assert events[0]["status"] == "cancelled"
    assert 0 < events[0]["output_tokens"] < 20  # four words delivered, counted by us
    assert Decimal(events[0]["cost"]["total"]) > 0


def test_upstream_errors_pass_through_and_charge_nothing(gateway: Gateway, caller: Tenant) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk(gateway, caller).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stop=["FAIL"]
        )
    assert ledger(gateway, caller) == []


def test_a_hard_budget_blocks_with_the_providers_error_shape(
    gateway: Gateway, caller: Tenant
) -> None:
    r = httpx.post(
        f"{gateway.url}/api/v1/budgets",
        json={"scope": "organization", "daily_limit": "0.001", "action": "block"},
        headers=caller.headers,
    )
    assert r.status_code == 201
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway, caller).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=4000
        )
    assert "organization" in str(caught.value) and "resets at" in str(caught.value)
    assert caught.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert caught.value.status_code == 429
    assert ledger(gateway, caller) == []


def test_unknown_key_is_refused(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="llk_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert caught.value.code == "invalid_api_key"


def test_models_lists_the_configured_providers_models(gateway: Gateway, caller: Tenant) -> None:
    client = sdk(gateway, caller)
    ids = {m.id for m in client.models.list()}
    assert "gpt-4o" in ids and "claude-sonnet-4-5" in ids
    assert client.models.retrieve("gpt-4o").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("deepseek/deepseek-chat")  # no deepseek key here


def _wait_for_events(gateway: Gateway, caller: Tenant, n: int) -> list[dict[str, object]]:
    events = ledger(gateway, caller, expect=n)
    assert len(events) >= n, "the call was not recorded"
    return events


def test_embeddings_are_recorded_as_input_only(gateway: Gateway, caller: Tenant) -> None:
    result = sdk(gateway, caller).embeddings.create(
        model="text-embedding-3-small", input=["budgets", "alerts"]
    )
    assert len(result.data) == 2
    [event] = ledger(gateway, caller, expect=1)
    assert event["input_tokens"] == 42 and event["output_tokens"] == 0
    assert Decimal(event["cost"]["total"]) > 0


def test_responses_api_is_recorded_with_cached_and_reasoning_tokens(
    gateway: Gateway, caller: Tenant
) -> None:
    response = sdk(gateway, caller).responses.create(
        model="gpt-4o", instructions="Be brief.", input="Say something about budgets."
    )
    assert response.output_text.startswith("Budgets hold")
    [event] = ledger(gateway, caller, expect=1)
    assert event["input_tokens"] == 900 and event["cached_input_tokens"] == 800
    assert event["output_tokens"] == 250 and event["reasoning_tokens"] == 50
    assert Decimal(event["cost"]["total"]) > 0


def test_responses_stream_is_relayed_and_recorded(gateway: Gateway, caller: Tenant) -> None:
    stream = sdk(gateway, caller).responses.create(
        model="gpt-4o-mini", input=[{"role": "user", "content": "Hi"}], stream=True
    )
    text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert text == "Budgets hold under concurrency, and alerts fire once."
    [event] = ledger(gateway, caller, expect=1)
    assert event["output_tokens"] == 250 and Decimal(event["cost"]["total"]) > 0
