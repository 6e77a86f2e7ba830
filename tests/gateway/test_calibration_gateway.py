"""Gateway calls teach the estimates: each call whose provider reports usage compares our
input estimate with the provider's count."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from llmledger import count_messages
from llmledger.estimates.calibration import MIN_CALLS
from tests.conftest import Tenant
from tests.gateway.conftest import Gateway

PROMPT = "Summarise the attached quarterly report in five bullet points for the board."


def test_gateway_calls_teach_the_estimates(gateway: Gateway, caller: Tenant) -> None:
    model = "claude-haiku-4-5"
    messages = [{"role": "user", "content": PROMPT}]
    ours = count_messages(messages, model).tokens
    client = anthropic.Anthropic(base_url=gateway.url, api_key=caller.key, max_retries=0)
    for _ in range(MIN_CALLS):
        client.messages.create(
            model=model,
            max_tokens=100,
            messages=messages,
            extra_body={"fake_input_tokens": round(ours * 1.25)},
        )
    gateway.flush()
    listed = httpx.get(f"{gateway.url}/api/v1/estimates/accuracy", headers=caller.headers).json()
    [row] = [c for c in listed if c["model"] == model]
    assert row["provider"] == "anthropic" and row["applied"] is True
    assert row["calls"] == MIN_CALLS and row["factor"] == pytest.approx(1.25, rel=0.02)
    preview = httpx.post(
        f"{gateway.url}/api/v1/estimates",
        json={"model": model, "messages": messages, "alternatives": 0},
        headers=caller.headers,
    ).json()
    # Every call had our estimate and the same report: the preview now says the report.
    assert preview["input_tokens"] == round(ours * 1.25)
