"""Budgets, allocations, status and checks as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmledger.kit.schemas import CostOut, Usd

Scope = str  # "organization" | "team:NAME" | "department:NAME" | "user:EMAIL" | "key:ID"


def _check_thresholds(values: list[int] | None) -> list[int] | None:
    if values is None:
        return None
    for value in values:
        if not 1 <= value <= 1000:
            raise ValueError(f"threshold {value} is outside 1-1000 (percent of the limit)")
    if len(set(values)) != len(values):
        raise ValueError("thresholds must not repeat")
    return sorted(values)


class BudgetFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_limit: Usd | None = Field(default=None, ge=0, description="USD per day")
    monthly_limit: Usd | None = Field(default=None, ge=0, description="USD per month")
    thresholds: list[int] | None = Field(default=None, max_length=20, description="percent")
    action: Literal["warn", "block"] | None = None
    max_tokens_per_prompt: int | None = Field(default=None, gt=0)
    notify_emails: list[str] | None = Field(default=None, max_length=50)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, values: list[int] | None) -> list[int] | None:
        return _check_thresholds(values)

    @field_validator("notify_emails")
    @classmethod
    def _emails(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            if "@" not in value or len(value) > 320:
                raise ValueError(f"{value!r} is not an email address")
        return None if values is None else list(dict.fromkeys(values))  # once per address


class BudgetIn(BudgetFields):
    scope: Scope = Field(
        description='"organization", "team:NAME", "department:NAME", "user:EMAIL" or "key:ID"'
    )

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetIn:
        if (
            self.daily_limit is None
            and self.monthly_limit is None
            and not self.max_tokens_per_prompt
        ):
            raise ValueError("give a daily_limit, a monthly_limit or a max_tokens_per_prompt")
        return self


class BudgetPatch(BudgetFields):
    """Fields to change; a null limit removes it (send the field explicitly)."""


class AllocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=320, description="email or external user id")
    monthly_limit: Usd | None = Field(default=None, ge=0)
    daily_limit: Usd | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> AllocationIn:
        if self.monthly_limit is None and self.daily_limit is None:
            raise ValueError("give a monthly_limit or a daily_limit")
        return self


class AllocationOut(BaseModel):
    id: int
    budget_id: int
    user: str
    monthly_limit: Usd | None
    daily_limit: Usd | None


class LineOut(BaseModel):
    label: str
    period: Literal["daily", "monthly"]
    allocation_id: int | None
    period_start: datetime
    period_end: datetime
    limit: Usd
    spent: Usd
    reserved: Usd
    remaining: Usd
    percent_used: float
    forecast_spend: Usd
    forecast_limit_reached_at: datetime | None


class BudgetOut(BaseModel):
    id: int
    scope: Scope
    daily_limit: Usd | None
    monthly_limit: Usd | None
    thresholds: list[int]
    action: Literal["warn", "block"]
    max_tokens_per_prompt: int | None
    notify_emails: list[str]
    allocations: list[AllocationOut]
    status: list[LineOut]


class CheckIn(BaseModel):
    """A call about to run: give its prompt (text or messages) or its token count."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    provider: str | None = None
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    input_tokens: int | None = Field(default=None, ge=0)
    max_output_tokens: int = Field(default=0, ge=0, le=10_000_000)
    user: str | None = None
    team: str | None = None
    department: str | None = None

    @model_validator(mode="after")
    def _one_prompt(self) -> CheckIn:
        given = sum(x is not None for x in (self.text, self.messages, self.input_tokens))
        if given != 1:
            raise ValueError("give exactly one of text, messages or input_tokens")
        return self


class DecisionOut(BaseModel):
    verdict: Literal["allow", "warn", "block"]
    reasons: list[str]
    input_tokens: int
    max_output_tokens: int
    worst_case_cost: CostOut | None
    pricing_status: Literal["priced", "unpriced"]
    budgets: list[LineOut]
    reservation_id: str | None = None
    reservation_expires_at: datetime | None = None
