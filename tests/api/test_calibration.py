"""Self-correcting estimates: counts we can only estimate are corrected by what providers
reported for the same models' gateway calls, once there are enough of them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from llmledger.estimates.calibration import (
    MIN_CALLS,
    Observation,
    load_calibrations,
    record_observations,
)
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from tests.conftest import Tenant, create_tenant

PROMPT = "Summarise the attached quarterly report in five bullet points for the board."


def _observe(
    database_url: str, tenant: Tenant, provider: str, model: str, ratios: list[float]
) -> None:
    engine = make_engine(database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        record_observations(
            session,
            [Observation(tenant.org_id, provider, model, 1000, round(1000 * r)) for r in ratios],
        )
    engine.dispose()


def _estimate(client: TestClient, tenant: Tenant, model: str) -> dict[str, object]:
    r = client.post(
        "/api/v1/estimates",
        json={"model": model, "text": PROMPT, "alternatives": 0},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_estimates_are_corrected_once_a_model_has_enough_calls(
    client: TestClient, tenant: Tenant, database_url: str
) -> None:
    model = "claude-opus-4-1"
    raw = _estimate(client, tenant, model)
    assert raw["calibration"] is None and raw["tokens_exact"] is False
    _observe(database_url, tenant, "anthropic", model, [1.1, 1.3] * ((MIN_CALLS - 2) // 2))
    assert _estimate(client, tenant, model)["input_tokens"] == raw["input_tokens"]  # too few
    _observe(database_url, tenant, "anthropic", model, [1.1, 1.3])  # now MIN_CALLS
    corrected = _estimate(client, tenant, model)
    raw_tokens = int(str(raw["input_tokens"]))
    assert corrected["input_tokens"] == -(-raw_tokens * 6 // 5)  # x 1.2, rounded up
    calibration = corrected["calibration"]
    assert isinstance(calibration, dict)
    assert calibration["calls"] == MIN_CALLS and calibration["applied"] is True
    assert calibration["factor"] == pytest.approx(1.2)
    assert corrected["expected_error"] == pytest.approx(0.1 / 1.2, rel=1e-3)
    listed = client.get("/api/v1/estimates/accuracy", headers=tenant.headers).json()
    assert any(c["model"] == model and c["calls"] == MIN_CALLS for c in listed)
    # Budget checks count the prompt as previews do.
    check = client.post(
        "/api/v1/budgets/check",
        json={"model": model, "text": PROMPT, "max_output_tokens": 10},
        headers=tenant.headers,
    ).json()
    assert check["input_tokens"] == corrected["input_tokens"]
    # Another organization neither sees these calls nor is steered by them.
    other = create_tenant(database_url)
    assert _estimate(client, other, model)["input_tokens"] == raw["input_tokens"]
    assert client.get("/api/v1/estimates/accuracy", headers=other.headers).json() == []


def test_exact_counts_are_not_corrected_and_implausible_calls_are_left_out(
    client: TestClient, tenant: Tenant, database_url: str
) -> None:
    _observe(database_url, tenant, "openai", "gpt-4.1-nano", [1.5] * MIN_CALLS)
    exact = _estimate(client, tenant, "gpt-4.1-nano")
    assert exact["tokens_exact"] is True and exact["calibration"] is None
    # A PDF we do not count makes a call report 40x our estimate: it teaches nothing.
    _observe(database_url, tenant, "anthropic", "claude-3-haiku", [40.0] * MIN_CALLS + [0.1])
    engine = make_engine(database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        assert load_calibrations(session, tenant.org_id) == {}  # neither kept
    engine.dispose()
