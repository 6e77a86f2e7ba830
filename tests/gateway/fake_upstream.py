"""A local stand-in for OpenAI and Anthropic speaking their wire formats (JSON and SSE).

A stop sequence picks the behaviour: "FAIL" answers HTTP 500, "BREAK" drops the connection
in the middle of a stream. Usage figures are fixed so tests can check them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

UPSTREAM_KEY = "sk-upstream-test"
WORDS = ["Budgets ", "hold ", "under ", "concurrency, ", "and ", "alerts ", "fire ", "once."]
TRICKLED_WORDS = ["Coût ", "réel ", "👍 ", "预算"]  # multi-byte characters, for split reads
OPENAI_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 100},
}
ANTHROPIC_USAGE = {
    "input_tokens": 200,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 50,
    "output_tokens": 300,
}

# Headers a provider adds that callers' SDKs read; the gateway passes them on.
PROVIDER_HEADERS = {
    "x-request-id": "req_fake_123",
    "x-ratelimit-remaining-requests": "4999",
    "openai-processing-ms": "12",
    "set-cookie": "upstream=1",  # not the caller's business
    "openai-organization": "operator-org-123",  # the operator's account: not passed on
}

app = FastAPI()
seen: list[dict[str, Any]] = []  # request bodies, for tests to inspect


class Broken(Exception):
    pass


def _wants(body: dict[str, Any], what: str) -> bool:
    stops = body.get("stop") or body.get("stop_sequences") or []
    return what in (stops if isinstance(stops, list) else [stops])


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
        return JSONResponse({"error": {"message": "bad key", "type": "invalid_request_error"}}, 401)
    body = await request.json()
    seen.append(body)
    model = body["model"]
    if _wants(body, "FAIL"):
        return JSONResponse(
            {"error": {"message": "upstream exploded", "type": "server_error"}},
            500,
            headers={"x-request-id": "req_failed_456"},
        )
    if _wants(body, "REDIRECT"):
        return Response(status_code=307, headers={"location": "http://attacker.invalid/v1"})
    if _wants(body, "SLOW"):
        await asyncio.sleep(3)
    if not body.get("stream"):
        return JSONResponse(
            headers=PROVIDER_HEADERS,
            content={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(WORDS)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": OPENAI_USAGE,
            },
        )
    include_usage = (body.get("stream_options") or {}).get("include_usage")

    async def chunks() -> AsyncIterator[bytes]:
        for i, word in enumerate(TRICKLED_WORDS if _wants(body, "TRICKLE") else WORDS):
            if _wants(body, "BREAK") and i == 4:
                raise Broken("connection lost")
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            yield _sse(chunk)
            await asyncio.sleep(0)
        done = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}
        yield _sse({**done, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage:
            yield _sse({**done, "choices": [], "usage": OPENAI_USAGE})
        yield b"data: [DONE]\n\n"

    async def trickled() -> AsyncIterator[bytes]:
        """The same events in 5-byte pieces: lines and UTF-8 characters split across reads."""
        async for event in chunks():
            for start in range(0, len(event), 5):
                yield event[start : start + 5]
                await asyncio.sleep(0.0005)

    async def carriage_returns() -> AsyncIterator[bytes]:
        """Lines ended by a lone CR, as the SSE format allows, trickled in pieces."""
        async for piece in trickled():
            yield piece.replace(b"\n", b"\r")

    events = trickled() if _wants(body, "TRICKLE") else chunks()
    if _wants(body, "CR"):
        events = carriage_returns()
    return StreamingResponse(events, media_type="text/event-stream", headers=PROVIDER_HEADERS)


RESPONSES_USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 800},
    "output_tokens": 250,
    "output_tokens_details": {"reasoning_tokens": 50},
    "total_tokens": 1150,
}


@app.post("/v1/responses")
async def responses(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
        return JSONResponse({"error": {"message": "bad key", "type": "invalid_request_error"}}, 401)
    body = await request.json()
    seen.append(body)
    text = "".join(WORDS)
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": body["model"],
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": RESPONSES_USAGE,
    }
    if not body.get("stream"):
        return JSONResponse(response)

    async def events() -> AsyncIterator[bytes]:
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        yield _sse({"type": "response.created", "sequence_number": 0, "response": started})
        for i, word in enumerate(WORDS):
            delta = {
                "type": "response.output_text.delta",
                "sequence_number": i + 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": word,
                "logprobs": [],
            }
            yield _sse(delta)
            await asyncio.sleep(0)
        yield _sse({"type": "response.completed", "sequence_number": 99, "response": response})

    return StreamingResponse(events(), media_type="text/event-stream")


@app.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
        return JSONResponse({"error": {"message": "bad key", "type": "invalid_request_error"}}, 401)
    body = await request.json()
    seen.append(body)
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return JSONResponse(
        {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i in range(len(inputs))
            ],
            "usage": {"prompt_tokens": 42, "total_tokens": 42},
        }
    )


@app.post("/v1/messages")
async def messages(request: Request) -> Response:
    if request.headers.get("x-api-key") != UPSTREAM_KEY:
        return JSONResponse(
            {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}, 401
        )
    body = await request.json()
    seen.append(body)
    model = body["model"]
    # A test can have the provider report a count of its choosing ("fake_input_tokens").
    usage = ANTHROPIC_USAGE
    if isinstance(body.get("fake_input_tokens"), int):
        usage = {"input_tokens": body["fake_input_tokens"], "output_tokens": 300}
    if _wants(body, "FAIL"):
        return JSONResponse(
            {"type": "error", "error": {"type": "api_error", "message": "boom"}}, 500
        )
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if not body.get("stream"):
        return JSONResponse(
            {
                **message,
                "content": [{"type": "text", "text": "".join(WORDS)}],
                "usage": usage,
            }
        )

    async def events() -> AsyncIterator[bytes]:
        start_usage = {**usage, "output_tokens": 1}
        yield _sse(
            {
                "type": "message_start",
                "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
            },
            "message_start",
        )
        yield _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        )
        for i, word in enumerate(TRICKLED_WORDS if _wants(body, "TRICKLE") else WORDS):
            if _wants(body, "BREAK") and i == 4:
                raise Broken("connection lost")
            yield _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
                "content_block_delta",
            )
            await asyncio.sleep(0)
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        yield _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 300},
            },
            "message_delta",
        )
        yield _sse({"type": "message_stop"}, "message_stop")

    return StreamingResponse(events(), media_type="text/event-stream")


@app.post("/v1/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    if request.headers.get("x-api-key") != UPSTREAM_KEY:
        return JSONResponse(
            {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}, 401
        )
    body = await request.json()
    return JSONResponse({"input_tokens": 7 * len(body["messages"])})
