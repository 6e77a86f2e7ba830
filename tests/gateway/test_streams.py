"""What a stream delivered, read from its events in each wire format: the basis of the
charge when a stream breaks before the provider reports usage."""

from __future__ import annotations

import json
from typing import Any

from llmledger.gateway.streams import StreamTally


def _tally(wire: str, events: list[dict[str, Any]]) -> StreamTally:
    tally = StreamTally(wire)
    for event in events:
        tally.read_line(f"data: {json.dumps(event)}")
    tally.read_line("")
    tally.read_line("data: [DONE]")
    return tally


def test_openai_tool_calls_and_reasoning_count_as_delivered_output() -> None:
    call = {"index": 0, "id": "c1", "type": "function"}
    tally = _tally(
        "openai",
        [
            {"choices": [{"delta": {"reasoning_content": "The user wants Paris. "}}]},
            {"choices": [{"delta": {"tool_calls": [{**call, "function": {"name": "forecast"}}]}}]},
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}
                ]
            },
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]
                        }
                    }
                ]
            },
        ],
    )
    assert "".join(tally.text) == 'The user wants Paris. forecast{"city":"Paris"}'
    assert tally.provider_usage() is None  # broken before the usage chunk


def test_responses_function_arguments_and_refusals_are_read() -> None:
    tally = _tally(
        "responses",
        [
            {"type": "response.output_text.delta", "delta": "Checking. "},
            {"type": "response.function_call_arguments.delta", "delta": '{"city":"Paris"}'},
            {"type": "response.reasoning_summary_text.delta", "delta": "Needs weather."},
            {"type": "response.refusal.delta", "delta": " No."},
        ],
    )
    assert "".join(tally.text) == 'Checking. {"city":"Paris"}Needs weather. No.'


def test_anthropic_tool_use_and_thinking_are_read_and_usage_is_normalised() -> None:
    tally = _tally(
        "anthropic",
        [
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 10, "cache_read_input_tokens": 90}},
            },
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Paris. "},
            },
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "name": "forecast", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ],
    )
    assert "".join(tally.text) == 'Paris. forecast{"city":"Paris"}'
    assert tally.provider_usage() is None
    tally.read_line('data: {"type": "message_delta", "usage": {"output_tokens": 40}}')
    usage = tally.provider_usage()
    assert usage is not None
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (100, 90, 40)


def test_lines_that_are_not_data_are_ignored() -> None:
    tally = StreamTally("openai")
    for line in ("event: ping", ": keep-alive", "data: not json", "data: [1, 2]", "id: 7"):
        assert tally.read_line(line) is None
    assert tally.text == [] and tally.provider_usage() is None
