"""What the providers' wire formats say about usage, normalised to our convention
(input includes cache reads and writes; output includes reasoning), and their error shapes."""

from __future__ import annotations

from typing import Any

from llmledger.core.pricing import TokenUsage


def openai_usage(usage: dict[str, Any] | None) -> TokenUsage | None:
    """OpenAI counts cached tokens inside prompt_tokens and reasoning inside completion_tokens
    already: the same convention as ours."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    output_details = (
        usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    )
    cached = min(int(prompt_details.get("cached_tokens") or 0), prompt)
    reasoning = min(int(output_details.get("reasoning_tokens") or 0), completion)
    return TokenUsage(prompt, completion, cached_input_tokens=cached, reasoning_tokens=reasoning)


def anthropic_usage(usage: dict[str, Any] | None) -> TokenUsage | None:
    """Anthropic reports cache reads and writes outside input_tokens: add them in."""
    if not usage:
        return None
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    uncached = int(usage.get("input_tokens") or 0)
    output = int(usage.get("output_tokens") or 0)
    return TokenUsage(
        uncached + read + write, output, cached_input_tokens=read, cache_write_tokens=write
    )


def openai_error(message: str, code: str, kind: str = "insufficient_quota") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(message: str, kind: str = "rate_limit_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
