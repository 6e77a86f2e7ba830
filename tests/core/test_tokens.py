"""Token counts must equal tiktoken's, exactly, for the OpenAI encodings."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmledger import count_messages, count_text, count_tokens, count_tools
from llmledger.core.tokens import (
    CL100K,
    IMAGE_TOKENS_LOW_DETAIL,
    IMAGE_TOKENS_MAX,
    O200K,
    count_encoding,
    openai_encoding,
)
from llmledger.kit.reference_tokenizer import tiktoken_encoding

SAMPLES = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n\nprint(fib(30))\n",
    "SELECT id, SUM(cost) FROM usage_events WHERE occurred_at >= '2026-01-01' GROUP BY 1;",
    "こんにちは世界。今日はいい天気ですね。",
    "Привет, мир! Как у тебя дела сегодня?",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "हिन्दी में लिखा गया एक वाक्य।",
    "한국어 문장도 세어 봅니다.",
    "Ελληνικά: γειά σου κόσμε",
    "🙂🚀👩‍👩‍👧‍👦🏳️‍🌈 emoji ✨ mixed with text",
    "1234567890 3.14159265 1e-10 -42 0x1F 1,000,000.00",
    " " * 4000,
    "\t\t\n\n\n   \r\n  trailing   ",
    "\n" * 500 + "x",
    "a" * 5000,
    "I'm sure you're right; they'll say we've done it. IT'S DONE'LL",
    "<|endoftext|> special tokens are plain text here <|fim_prefix|>",
    "Ünïcödé àçcénts, naïve café, Straße, ﬁ ligature",
    '{"json": [1, 2, {"nested": "value"}], "ok": true, "none": null}',
    "https://example.com/path?query=1&other=two#fragment",
]


def _random_corpus(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(
            rng.choice(SAMPLES) + rng.choice(["", " ", "\n", "  "])
            for _ in range(rng.randint(1, 8))
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("encoding", [O200K, CL100K])
def test_counts_equal_tiktoken_on_varied_corpus(encoding: str) -> None:
    reference = tiktoken_encoding(encoding)
    corpus = SAMPLES + _random_corpus(7, 400)
    mismatches = [
        text[:40]
        for text in corpus
        if count_encoding(text, encoding) != len(reference.encode_ordinary(text))
    ]
    assert mismatches == []


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_counts_equal_tiktoken_on_arbitrary_unicode(text: str) -> None:
    for encoding in (O200K, CL100K):
        assert count_encoding(text, encoding) == len(
            tiktoken_encoding(encoding).encode_ordinary(text)
        )


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("openai/gpt-4.1", O200K),
        ("gpt-5", O200K),
        ("o3-mini", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("text-embedding-3-small", CL100K),
        ("claude-3-5-sonnet", None),
    ],
)
def test_models_map_to_the_encoding_openai_uses(model: str, encoding: str | None) -> None:
    assert openai_encoding(model) == encoding


def test_count_tokens_is_the_plain_encoding_count() -> None:
    text = "Budgets that hold under concurrency."
    assert count_tokens(text) == len(tiktoken_encoding(O200K).encode_ordinary(text))
    assert count_tokens(text, model="gpt-4") == len(tiktoken_encoding(CL100K).encode_ordinary(text))


def _cookbook_count(messages: list[dict[str, str]], encoding_name: str) -> int:
    """OpenAI's published way to count chat tokens, computed with tiktoken."""
    encoding = tiktoken_encoding(encoding_name)
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(encoding.encode_ordinary(value))
            if key == "name":
                total += 1
    return total + 3


@pytest.mark.parametrize(("model", "encoding"), [("gpt-4o", O200K), ("gpt-4", CL100K)])
def test_chat_messages_are_counted_as_openai_bills_them(model: str, encoding: str) -> None:
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "name": "alice", "content": "Summarise: 日本語 and emoji 🚀"},
        {"role": "assistant", "content": "Sure."},
    ]
    counted = count_messages(messages, model)
    assert counted.exact
    assert counted.tokens == _cookbook_count(messages, encoding)


def test_message_parts_count_their_text() -> None:
    plain = count_messages([{"role": "user", "content": "one two three"}])
    parts = count_messages(
        [{"role": "user", "content": [{"type": "text", "text": "one two three"}]}]
    )
    assert parts.tokens == plain.tokens


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-5",
        "gemini-2.5-pro",
        "mistral-large",
        "llama-3.1-70b",
        "deepseek-chat",
        "zz",
    ],
)
def test_other_providers_get_a_stated_nonzero_estimate(model: str) -> None:
    counted = count_text("A short prompt about budgets.", model)
    assert counted.tokens > 0
    assert not counted.exact
    assert 0 < counted.expected_error < 0.5
    assert count_text("", model).tokens == 0


def test_estimate_grows_with_text() -> None:
    short = count_tokens("word " * 10, "claude-3-5-haiku")
    long = count_tokens("word " * 1000, "claude-3-5-haiku")
    assert long > short * 50


def test_images_count_as_the_most_they_can_cost() -> None:
    text = [{"type": "text", "text": "What is in this picture?"}]
    plain = count_messages([{"role": "user", "content": text}])
    url = {"url": "https://example.com/cat.png"}
    high = count_messages(
        [{"role": "user", "content": [*text, {"type": "image_url", "image_url": url}]}]
    )
    low = count_messages(
        [
            {
                "role": "user",
                "content": [*text, {"type": "image_url", "image_url": {**url, "detail": "low"}}],
            }
        ]
    )
    anthropic = count_messages(
        [{"role": "user", "content": [*text, {"type": "image", "source": {"type": "base64"}}]}],
        "claude-sonnet-4-5",
    )
    assert plain.exact and not high.exact and not low.exact
    assert high.tokens - plain.tokens == IMAGE_TOKENS_MAX
    assert low.tokens - plain.tokens == IMAGE_TOKENS_LOW_DETAIL
    assert anthropic.tokens > IMAGE_TOKENS_MAX


def test_tool_calls_and_results_count_their_json() -> None:
    arguments = json.dumps({"city": "Paris", "unit": "celsius", "days": 7})
    asked = {"role": "user", "content": "Weather in Paris this week?"}
    called = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "forecast", "arguments": arguments},
            }
        ],
    }
    without = count_messages([asked, {"role": "assistant", "content": None}])
    with_call = count_messages([asked, called])
    assert not with_call.exact
    assert with_call.tokens - without.tokens == count_tokens("forecast") + count_tokens(arguments)

    blocks = [
        {"type": "tool_use", "id": "t1", "name": "forecast", "input": {"city": "Paris"}},
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [{"type": "text", "text": "Sunny"}],
        },
    ]
    plain = count_messages([{"role": "user", "content": []}], "claude-sonnet-4-5")
    counted = count_messages([{"role": "user", "content": blocks}], "claude-sonnet-4-5")
    assert counted.tokens > plain.tokens + 3 and not counted.exact


def test_tool_definitions_are_counted_and_grow_with_their_schema() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "forecast",
            "description": "Weather forecast for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    one = count_tools([tool])
    described = count_tools([{**tool, "function": {**tool["function"], "description": "x " * 200}}])
    assert count_tools(None).tokens == 0 and count_tools([]).tokens == 0
    assert one.tokens > 10 and not one.exact
    assert described.tokens > one.tokens + 150
    assert count_tools([tool], "claude-sonnet-4-5").tokens > 0
