"""Usage events as the API takes and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from llmledger.kit.schemas import CostOut, Usd

MAX_BATCH = 1000


class UsageIn(BaseModel):
    """One LLM call. input_tokens include cached and cache-write tokens; output_tokens include
    reasoning tokens (the OpenAI / genai-prices convention)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    occurred_at: AwareDatetime | None = None
    client_request_id: str | None = Field(default=None, min_length=1, max_length=200)
    user: str | None = Field(default=None, max_length=320, description="email or external user id")
    team: str | None = Field(default=None, max_length=200)
    department: str | None = Field(default=None, max_length=200)
    prompt_id: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=100)
    latency_ms: int | None = Field(default=None, ge=0)
    status: Literal["success", "error", "cancelled"] = "success"
    source: Literal["api", "gateway", "lab"] = "api"
    tags: dict[str, str] | None = None

    @model_validator(mode="after")
    def _parts_within_totals(self) -> UsageIn:
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cached_input_tokens + cache_write_tokens cannot exceed input_tokens "
                "(input_tokens include them)"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                "reasoning_tokens cannot exceed output_tokens (output_tokens include them)"
            )
        return self


class UsageBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[UsageIn] = Field(min_length=1, max_length=MAX_BATCH)


class RecordedEvent(BaseModel):
    id: int
    client_request_id: str
    duplicate: bool
    provider: str
    model: str
    pricing_status: Literal["priced", "unpriced"]
    cost: CostOut | None
    price_version: str | None


class RecordedBatch(BaseModel):
    recorded: int
    duplicates: int
    total_cost: Usd
    events: list[RecordedEvent]


class UsageEventOut(BaseModel):
    id: int
    occurred_at: datetime
    provider: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    pricing_status: str
    cost: CostOut | None
    price_version: str | None
    user: str | None
    team: str | None
    department: str | None
    prompt_id: str | None
    prompt_version: str | None
    latency_ms: int | None
    status: str
    source: str
    tags: dict[str, str] | None
    client_request_id: str | None


class UsagePage(BaseModel):
    events: list[UsageEventOut]
    next_cursor: str | None
