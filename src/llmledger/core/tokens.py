"""Token counts: exact for OpenAI encodings, a stated estimate for other providers.

The OpenAI encodings come from the `bpe-openai` package, which ships o200k_base and
cl100k_base inside its wheel (no download at run time) and counts without building the
token list. Its counts are checked against tiktoken in the test suite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

O200K = "o200k_base"
CL100K = "cl100k_base"

# Model name prefixes (after any "provider/" prefix) and the encoding OpenAI uses for them.
# Order matters: the first matching prefix wins, so "gpt-4o" must come before "gpt-4".
_OPENAI_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K),
    ("chatgpt-4o", O200K),
    ("gpt-4.1", O200K),
    ("gpt-4.5", O200K),
    ("gpt-5", O200K),
    ("gpt-oss", O200K),
    ("o1", O200K),
    ("o3", O200K),
    ("o4", O200K),
    ("codex-", O200K),
    ("computer-use", O200K),
    ("gpt-4", CL100K),
    ("gpt-3.5", CL100K),
    ("text-embedding-3", CL100K),
    ("text-embedding-ada-002", CL100K),
)


@dataclass(frozen=True)
class Estimator:
    """How tokens are estimated for a model family without its own tokenizer.

    `factor` scales the count of `base` encoding; `expected_error` is the relative error we
    expect (documented in the README), shown to users next to estimated counts.
    """

    family: str
    base: str
    factor: float
    expected_error: float


# Factors from published tokenizer comparisons on English prose and code; the error is the
# spread across languages. Claude's tokenizer splits finer than cl100k; Llama 3 extends
# cl100k; Gemini, Mistral (tekken) and Qwen use vocabularies of o200k's size.
_ESTIMATORS: tuple[tuple[str, Estimator], ...] = (
    ("claude", Estimator("anthropic", CL100K, 1.15, 0.15)),
    ("anthropic", Estimator("anthropic", CL100K, 1.15, 0.15)),
    ("gemini", Estimator("google", O200K, 1.05, 0.15)),
    ("gemma", Estimator("google", O200K, 1.05, 0.15)),
    ("llama", Estimator("meta", CL100K, 1.0, 0.10)),
    ("meta", Estimator("meta", CL100K, 1.0, 0.10)),
    ("mistral", Estimator("mistral", O200K, 1.10, 0.15)),
    ("mixtral", Estimator("mistral", CL100K, 1.25, 0.20)),
    ("codestral", Estimator("mistral", O200K, 1.10, 0.15)),
    ("deepseek", Estimator("deepseek", CL100K, 1.05, 0.15)),
    ("qwen", Estimator("qwen", O200K, 1.05, 0.15)),
    ("grok", Estimator("xai", O200K, 1.05, 0.20)),
    ("command", Estimator("cohere", CL100K, 1.10, 0.20)),
)
_DEFAULT_ESTIMATOR = Estimator("other", O200K, 1.10, 0.25)


@dataclass(frozen=True)
class TokenCount:
    """A count and how much to trust it."""

    tokens: int
    exact: bool
    encoding: str
    expected_error: float = 0.0


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


@cache
def _counter(encoding: str) -> _Counter:
    from bpe_openai import _bindings  # the Rust counter; imported lazily, it maps ~70 MB

    counter: _Counter = _bindings.tokenizer_for_encoding(encoding)
    return counter


def load_encodings() -> None:
    """Load both encodings now (about 0.4 s), so the first call to count does not wait."""
    for encoding in (O200K, CL100K):
        _counter(encoding)


def _bare_model(model: str) -> str:
    name = model.strip().lower()
    return name.rsplit("/", 1)[-1]


@cache
def openai_encoding(model: str) -> str | None:
    """The exact OpenAI encoding for a model name, or None when it is not an OpenAI model."""
    name = _bare_model(model)
    for prefix, encoding in _OPENAI_PREFIXES:
        if name.startswith(prefix):
            return encoding
    if name.startswith("ft:"):
        return openai_encoding(name[3:].split(":", 1)[0])
    return None


@cache
def estimator_for(model: str) -> Estimator:
    name = model.strip().lower()
    for marker, estimator in _ESTIMATORS:
        if marker in name:
            return estimator
    return _DEFAULT_ESTIMATOR


def count_encoding(text: str, encoding: str) -> int:
    """Plain count of `text` in an OpenAI encoding (special tokens counted as text)."""
    if not text:
        return 0
    return _counter(encoding).count(text)


def count_text(text: str, model: str = "gpt-4o") -> TokenCount:
    """Count `text` as `model` would bill it: exact for OpenAI models, estimated otherwise."""
    encoding = openai_encoding(model)
    if encoding is not None:
        return TokenCount(count_encoding(text, encoding), True, encoding)
    estimator = estimator_for(model)
    base = count_encoding(text, estimator.base)
    tokens = math.ceil(base * estimator.factor) if base else 0
    return TokenCount(tokens, False, f"estimate:{estimator.family}", estimator.expected_error)


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    """Tokens in `text` for `model`: exact for OpenAI encodings, an estimate otherwise."""
    return count_text(text, model).tokens


# OpenAI's billing of chat messages: every message is wrapped in 3 tokens of framing, a
# name costs one more, and the reply is primed with 3 tokens.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


# Images are billed by their size, which a request does not state (a URL or base64 data), so
# an image counts as the most one can cost: a low-detail OpenAI image is a flat 85 tokens, any
# other at most 1,600 (Anthropic's ceiling, above OpenAI's 1,445 for high detail).
IMAGE_TOKENS_LOW_DETAIL = 85
IMAGE_TOKENS_MAX = 1_600
_IMAGE_PARTS = ("image_url", "input_image", "image")


def _content_text(content: Any) -> Iterable[str]:
    """The text of message content: a string, or parts (text, and the tool calls and results
    of Anthropic's content blocks, which are billed as their JSON)."""
    if content is None:
        return
    if isinstance(content, str):
        yield content
        return
    if isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    yield text
                if part.get("type") == "tool_use":
                    yield str(part.get("name", ""))
                    yield json.dumps(part.get("input"), ensure_ascii=False)
                elif part.get("type") == "tool_result":
                    yield from _content_text(part.get("content"))
            elif isinstance(part, str):
                yield part
        return
    raise ValueError("message content must be a string or a list of parts")


def _image_tokens(content: Any) -> int:
    if not isinstance(content, Sequence) or isinstance(content, str):
        return 0
    total = 0
    for part in content:
        if isinstance(part, Mapping) and part.get("type") in _IMAGE_PARTS:
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
            total += IMAGE_TOKENS_LOW_DETAIL if detail == "low" else IMAGE_TOKENS_MAX
    return total


def _tool_call_text(calls: Any) -> Iterable[str]:
    """An OpenAI assistant message's tool calls: each function's name and JSON arguments."""
    for call in calls if isinstance(calls, Sequence) else ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            yield str(function.get("name", ""))
            yield str(function.get("arguments", ""))


def _scaled(total: int, encoding: str | None, model: str, exact: bool) -> TokenCount:
    """A count in an OpenAI encoding as it stands, or scaled to another model's estimate."""
    if encoding is not None:
        return TokenCount(total, exact, encoding)
    estimator = estimator_for(model)
    return TokenCount(
        math.ceil(total * estimator.factor),
        False,
        f"estimate:{estimator.family}",
        estimator.expected_error,
    )


def count_tools(tools: Any, model: str = "gpt-4o") -> TokenCount:
    """The tool (function) definitions a request offers the model, counted as their JSON: an
    estimate (providers render them in formats of their own), never zero for real tools."""
    if not tools:
        return TokenCount(0, True, openai_encoding(model) or "none")
    encoding = openai_encoding(model)
    base = encoding or estimator_for(model).base
    text = json.dumps(tools, ensure_ascii=False, separators=(",", ":"))
    return _scaled(count_encoding(text, base), encoding, model, exact=False)


def count_messages(messages: Sequence[Mapping[str, Any]], model: str = "gpt-4o") -> TokenCount:
    """Count chat messages the way OpenAI bills them (per-message framing included). Images
    and tool calls make the count an upper estimate rather than exact."""
    encoding = openai_encoding(model)
    base_encoding = encoding or estimator_for(model).base
    total = 0
    exact = True
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += sum(count_encoding(t, base_encoding) for t in _content_text(value))
                images = _image_tokens(value)
                total += images
                exact = exact and not images and not _has_blocks(value)
            elif key == "tool_calls":
                total += sum(count_encoding(t, base_encoding) for t in _tool_call_text(value))
                exact = False
            elif isinstance(value, str):
                total += count_encoding(value, base_encoding)
                if key == "name":
                    total += TOKENS_PER_NAME
    total += REPLY_PRIMING
    return _scaled(total, encoding, model, exact)


def _has_blocks(content: Any) -> bool:
    """Content holding tool blocks, whose billing format is the provider's own."""
    return isinstance(content, Sequence) and any(
        isinstance(part, Mapping) and part.get("type") in ("tool_use", "tool_result")
        for part in content
    )
