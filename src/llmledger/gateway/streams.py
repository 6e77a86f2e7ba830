"""Reading server-sent events as they pass through: the text delivered so far and the usage
the provider reports, so a stream is never recorded as $0, even when it breaks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmledger.core.pricing import TokenUsage
from llmledger.gateway.wire import anthropic_usage, openai_usage

# Responses API events that carry output: text, refusals, tool arguments, reasoning.
_RESPONSES_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)


@dataclass
class StreamTally:
    wire: str  # "openai" (chat completions), "responses" (OpenAI Responses) or "anthropic"
    text: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    reported: bool = False

    def read_line(self, line: str) -> dict[str, Any] | None:
        """Take one SSE line; returns the parsed data object, if it is one."""
        if not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        if self.wire == "openai":
            self._openai(data)
        elif self.wire == "responses":
            self._responses(data)
        else:
            self._anthropic(data)
        return data

    def _openai(self, data: dict[str, Any]) -> None:
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            # Reasoning text some OpenAI-compatible providers stream (DeepSeek, vLLM).
            self._take(delta.get("content"), delta.get("reasoning_content"))
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                self._take(function.get("name"), function.get("arguments"))
        if data.get("usage"):
            self.usage = data["usage"]
            self.reported = True

    def _responses(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind in _RESPONSES_DELTAS:
            self._take(data.get("delta"))
        elif kind in ("response.completed", "response.incomplete"):
            self.usage = (data.get("response") or {}).get("usage") or {}
            self.reported = bool(self.usage)

    def _anthropic(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            self.usage.update((data.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            self._take((data.get("content_block") or {}).get("name"))  # a tool's name
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            self._take(delta.get("text"), delta.get("partial_json"), delta.get("thinking"))
        elif kind == "message_delta":
            self.usage.update(data.get("usage") or {})
            self.reported = True

    def _take(self, *parts: Any) -> None:
        """Keep what the model produced: text, tool calls' JSON, reasoning. All of it is
        billed as output, so a broken stream is charged for all of it."""
        self.text.extend(part for part in parts if isinstance(part, str))

    def provider_usage(self) -> TokenUsage | None:
        if not self.reported:
            return None
        return anthropic_usage(self.usage) if self.wire == "anthropic" else openai_usage(self.usage)
