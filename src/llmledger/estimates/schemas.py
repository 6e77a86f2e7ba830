"""Estimate requests and responses."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from llmledger.kit.schemas import CostOut, Usd


class EstimateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="tool (function) definitions the prompt offers the model"
    )
    max_output_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    at: AwareDatetime | None = Field(default=None, description="price the prompt as of this time")
    alternatives: int = Field(default=5, ge=0, le=50)

    @model_validator(mode="after")
    def _one_prompt(self) -> EstimateIn:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of text or messages")
        return self


class AlternativeOut(BaseModel):
    provider: str
    model: str
    input_tokens: int
    tokens_exact: bool
    context_window: int
    cost: CostOut
    saving: Usd


class CalibrationOut(BaseModel):
    """How our estimates for a model compare with what its provider reported."""

    provider: str
    model: str
    calls: int = Field(description="gateway calls whose provider reported its own count")
    factor: float = Field(description="reported over estimated input tokens, over all calls")
    spread: float = Field(description="relative standard deviation of the per-call ratio")
    applied: bool = Field(description="enough calls to correct estimates by the factor")


class EstimateOut(BaseModel):
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    tokens_exact: bool
    tokenizer: str
    expected_error: float = Field(description="relative error of an estimated count; 0 if exact")
    context_window: int | None
    fits_context: bool | None
    cost: CostOut
    currency: str = "USD"
    price_version: str
    alternatives: list[AlternativeOut]
    calibration: CalibrationOut | None = Field(
        default=None, description="the correction applied to an estimated count, if any"
    )
