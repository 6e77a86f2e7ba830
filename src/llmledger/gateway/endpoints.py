"""OpenAI- and Anthropic-compatible endpoints: point the official SDKs here, unchanged."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from llmledger.core.money import as_text
from llmledger.core.pricing import TokenUsage
from llmledger.core.tokens import count_messages, count_text, count_tools
from llmledger.gateway import flow
from llmledger.gateway.credentials import Upstream, route
from llmledger.gateway.streams import StreamTally
from llmledger.gateway.wire import anthropic_error, anthropic_usage, openai_error, openai_usage
from llmledger.kit.errors import ApiError

log = logging.getLogger("llmledger.gateway")
router = APIRouter(tags=["gateway"], include_in_schema=True)

ErrorShape = Callable[[str, str], dict[str, Any]]


def _openai_shape(message: str, code: str) -> dict[str, Any]:
    kinds = {"budget_exceeded": "insufficient_quota", "upstream_error": "api_error"}
    return openai_error(message, code, kinds.get(code, "invalid_request_error"))


def _anthropic_shape(message: str, code: str) -> dict[str, Any]:
    kinds = {"budget_exceeded": "rate_limit_error", "invalid_api_key": "authentication_error"}
    return anthropic_error(message, kinds.get(code, "invalid_request_error"))


def _secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _tags(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    pairs = (part.split("=", 1) for part in raw.split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def _who(request: Request, fallback_user: str | None) -> flow.Attribution:
    h = request.headers
    return flow.Attribution(
        user=h.get("x-llmledger-user") or fallback_user,
        team=h.get("x-llmledger-team"),
        department=h.get("x-llmledger-department"),
        prompt_id=h.get("x-llmledger-prompt-id"),
        prompt_version=h.get("x-llmledger-prompt-version"),
        tags=_tags(h.get("x-llmledger-tags")),
    )


def _cost_headers(admitted: flow.Admitted, cost: Decimal | None) -> dict[str, str]:
    headers = {
        "x-llmledger-request-id": admitted.request_id,
        "x-llmledger-verdict": admitted.decision.verdict,
    }
    if admitted.decision.reasons:  # a soft budget is (or would be) over: say which
        reasons = "; ".join(admitted.decision.reasons)
        headers["x-llmledger-warning"] = reasons.encode("ascii", "backslashreplace").decode()
    if cost is not None:
        headers["x-llmledger-cost"] = as_text(cost)
    remaining = flow.remaining_after(admitted, cost)
    if remaining is not None:
        headers["x-llmledger-budget-remaining"] = as_text(remaining)
    return headers


async def _body(
    request: Request, shape: ErrorShape, field: str, kinds: tuple[type, ...] = (list,)
) -> dict[str, Any] | JSONResponse:
    """The JSON body, with a string `model` and `field` of one of `kinds`; else a 400 in the
    provider's error shape."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return JSONResponse(shape("request body is not JSON", "invalid_request"), status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return JSONResponse(shape("'model' is required", "invalid_request"), status_code=400)
    if not isinstance(body.get(field), kinds):
        names = " or ".join("a string" if k is str else "a list" for k in kinds)
        message = f"'{field}' must be {names}"
        return JSONResponse(shape(message, "invalid_request"), status_code=400)
    return body


def _openai_user(body: dict[str, Any]) -> str | None:
    return body["user"] if isinstance(body.get("user"), str) else None


async def _admit(
    request: Request,
    shape: ErrorShape,
    provider: str,
    model: str,
    tokens: int,
    max_out: int,
    who: flow.Attribution,
) -> flow.Admitted | JSONResponse:
    gateway: flow.Gateway = request.app.state.gateway
    secret = _secret(request)
    try:
        fast = await gateway.admit_fast(secret, provider, model, tokens, max_out, who)
        if fast is not None:
            return fast
        return await run_in_threadpool(gateway.admit, secret, provider, model, tokens, max_out, who)
    except (flow.Refused, ApiError, SQLAlchemyError) as exc:
        return _refusal(shape, exc)


def _refusal(shape: ErrorShape, exc: Exception) -> JSONResponse:
    """Why a call was not sent, in the provider's error shape."""
    if isinstance(exc, flow.Refused):
        return JSONResponse(shape(exc.message, exc.code), status_code=exc.status)
    if isinstance(exc, ApiError):
        return JSONResponse(shape(exc.message, exc.code), status_code=exc.status_code)
    # Budgets and keys cannot be checked, so the call is not sent (and not paid for).
    log.error("the gateway could not reach the database: %s", exc)
    message = "llmledger cannot reach its database; the call was not sent"
    return JSONResponse(shape(message, "database_unavailable"), status_code=503)


def _finish(
    request: Request,
    admitted: flow.Admitted,
    reported: TokenUsage | None,
    delivered: str,
    started: float,
    status: str = "success",
) -> Decimal | None:
    """Hand the call to the recorder (no waiting on the database) and price it: with the
    usage the provider reported, else our own count of what was delivered."""
    gateway: flow.Gateway = request.app.state.gateway
    latency = int((time.perf_counter() - started) * 1000)
    usage = reported or _counted(admitted, delivered)
    return gateway.finish(admitted, usage, latency, status, reported=reported is not None)


async def _release(request: Request, admitted: flow.Admitted) -> None:
    gateway: flow.Gateway = request.app.state.gateway
    # Shielded: a caller who hangs up must not keep the hold from being given back.
    await asyncio.shield(asyncio.ensure_future(run_in_threadpool(gateway.release, admitted)))


def _upstream_failed(shape: ErrorShape, exc: Exception) -> JSONResponse:
    status = 504 if isinstance(exc, TimeoutError) else 502
    return JSONResponse(
        shape(f"upstream unreachable: {exc.__class__.__name__}", "upstream_error"),
        status_code=status,
    )


# Upstream response headers a caller's SDK reads (request ids, rate limits, timing). Not the
# operator's account identity (openai-organization, openai-project, anthropic-organization-id),
# and hop-by-hop and body headers are ours to set.
_PASSED_HEADERS = frozenset(
    {
        "x-request-id",
        "request-id",
        "retry-after",
        "retry-after-ms",
        "openai-processing-ms",
        "openai-version",
    }
)
_PASSED_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def _passed_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in upstream.headers.items()
        if name.lower() in _PASSED_HEADERS or name.lower().startswith(_PASSED_PREFIXES)
    }


async def _proxy(
    request: Request,
    shape: ErrorShape,
    admitted: flow.Admitted,
    url: str,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    usage_of: Callable[[dict[str, Any]], TokenUsage | None],
    hide_usage_chunk: bool,
    wire: str,
) -> Response:
    client: aiohttp.ClientSession = request.app.state.upstream
    started = time.perf_counter()
    headers["content-type"] = "application/json"
    try:
        # No redirects: following one would resend the provider key to wherever it points.
        upstream = await client.post(url, data=body, headers=headers, allow_redirects=False)
    except Exception as exc:  # unreachable, timed out, or a request aiohttp refuses to send
        await _release(request, admitted)
        return _upstream_failed(shape, exc)
    passed = _passed_headers(upstream)
    if upstream.status >= 300 or not stream:
        try:
            content = await upstream.read()
        except Exception as exc:
            await _release(request, admitted)
            return _upstream_failed(shape, exc)
        finally:
            upstream.release()
        if upstream.status >= 300:
            await _release(request, admitted)  # nothing is charged for a failed call
            if upstream.status < 400:
                message = f"upstream answered {upstream.status} (a redirect), not followed"
                return JSONResponse(shape(message, "upstream_error"), status_code=502)
            media = upstream.headers.get("content-type", "application/json")
            return Response(content, upstream.status, passed, media)
        data = _json(content)
        cost = _finish(request, admitted, usage_of(data), _reply_text(data), started)
        passed.update(_cost_headers(admitted, cost))
        return Response(content, upstream.status, passed, "application/json")
    passed.update(_cost_headers(admitted, None))
    return StreamingResponse(
        _relay(request, admitted, upstream, started, hide_usage_chunk, wire),
        status_code=upstream.status,
        media_type="text/event-stream",
        headers=passed,
    )


async def _relay(
    request: Request,
    admitted: flow.Admitted,
    upstream: aiohttp.ClientResponse,
    started: float,
    hide_usage_chunk: bool,
    wire: str,
) -> AsyncIterator[bytes]:
    """Pass the upstream's events on as they arrive, reading each complete line on the way."""
    tally = StreamTally(wire)
    completed = False
    partial = b""

    def kept(lines: list[bytes]) -> list[bytes]:
        out = []
        for raw in lines:
            data = tally.read_line(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
            if hide_usage_chunk and data and data.get("usage") and not data.get("choices"):
                continue  # the caller did not ask for the usage chunk we asked for
            out.append(raw)
        return out

    try:
        async for chunk in upstream.content.iter_any():
            lines, partial = _split_lines(partial + chunk)
            if passing := kept(lines):
                yield b"".join(passing)
        if partial and (last := kept([partial])):
            yield last[0]
        completed = True
        # An upstream that dies mid-stream raises here, and the caller's connection is cut
        # as the provider's was; `finally` still charges what was delivered.
    finally:
        upstream.release()
        reported = tally.provider_usage() if completed else None
        status = "success" if completed else "cancelled"
        _finish(request, admitted, reported, "".join(tally.text), started, status)


# Server-sent events end lines with CRLF, LF or a lone CR.
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _split_lines(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines of a stream buffer, each with its own ending (relayed as it came),
    and the unfinished rest. A CR at the very end may be half of a CRLF: it waits."""
    lines = []
    start = 0
    for end in _LINE_END.finditer(buffer):
        if end.group() == b"\r" and end.end() == len(buffer):
            break
        lines.append(buffer[start : end.end()])
        start = end.end()
    return lines, buffer[start:]


def _json(content: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _reply_text(data: dict[str, Any]) -> str:
    """The text of a reply in any of the three wire formats."""
    chat = "".join((c.get("message") or {}).get("content") or "" for c in data.get("choices") or [])
    anthropic = "".join(b.get("text", "") for b in data.get("content") or [] if isinstance(b, dict))
    responses = "".join(
        part.get("text", "")
        for item in data.get("output") or []
        if isinstance(item, dict)
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    )
    return chat + anthropic + responses


def _counted(admitted: flow.Admitted, delivered: str) -> TokenUsage:
    """Our own count when the provider reported no usage (e.g. a broken stream)."""
    return TokenUsage(admitted.input_tokens, count_text(delivered, admitted.model).tokens)


def _input_tokens(
    shape: ErrorShape, messages: list[dict[str, Any]], body: dict[str, Any], model: str
) -> int | JSONResponse:
    """The call's input as held against budgets: its messages and the tools it offers."""
    try:
        return count_messages(messages, model).tokens + count_tools(body.get("tools"), model).tokens
    except (ValueError, AttributeError, TypeError):
        message = "messages must be objects whose content is a string or a list of parts"
        return JSONResponse(shape(message, "invalid_request"), status_code=400)


async def _openai_call(
    request: Request,
    body: dict[str, Any],
    route: tuple[str, str],
    tokens: int,
    max_out: int,
    path: str,
    changes: dict[str, Any] | None = None,
    hide_usage_chunk: bool = False,
    wire: str = "openai",
) -> Response:
    """Admit an OpenAI-format call and forward it to the provider it is routed to."""
    provider, model = route
    who = _who(request, _openai_user(body))
    admitted = await _admit(request, _openai_shape, provider, model, tokens, max_out, who)
    if isinstance(admitted, JSONResponse):
        return admitted
    changes = dict(changes or {})
    if model != body["model"]:
        changes["model"] = model  # without the provider prefix, as the provider knows it
    payload = orjson.dumps({**body, **changes}) if changes else await request.body()
    return await _proxy(
        request,
        _openai_shape,
        admitted,
        f"{admitted.upstream.base_url}{path}",
        {"Authorization": f"Bearer {admitted.upstream.api_key}"},
        payload,
        bool(body.get("stream")),
        lambda d: openai_usage(d.get("usage")),
        hide_usage_chunk,
        wire,
    )


def _route(request: Request, body: dict[str, Any]) -> tuple[str, str]:
    return route(body["model"], request.headers.get("x-llmledger-provider"))


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI Chat Completions, streamed or not, estimated, enforced and recorded."""
    body = await _body(request, _openai_shape, "messages")
    if isinstance(body, JSONResponse):
        return body
    provider, model = _route(request, body)
    tokens = _input_tokens(_openai_shape, body["messages"], body, model)
    if isinstance(tokens, JSONResponse):
        return tokens
    settings = request.app.state.settings
    max_out = int(
        body.get("max_completion_tokens")
        or body.get("max_tokens")
        or settings.default_max_output_tokens
    )
    changes: dict[str, Any] = {}
    hide = False
    if body.get("stream"):  # ask for usage in the stream; hide it again if the caller did not
        options = dict(body.get("stream_options") or {})
        hide = not options.get("include_usage")
        changes["stream_options"] = {**options, "include_usage": True}
    return await _openai_call(
        request, body, (provider, model), tokens, max_out, "/chat/completions", changes, hide
    )


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    """OpenAI Embeddings, estimated, enforced and recorded (input tokens only)."""
    body = await _body(request, _openai_shape, "input", (str, list))
    if isinstance(body, JSONResponse):
        return body
    provider, model = _route(request, body)
    tokens = _embedding_input_tokens(body["input"], model)
    if tokens is None:
        return JSONResponse(
            _openai_shape("'input' must not be empty", "invalid_request"), status_code=400
        )
    return await _openai_call(request, body, (provider, model), tokens, 0, "/embeddings")


@router.post("/v1/responses")
async def responses(request: Request) -> Response:
    """OpenAI Responses, streamed or not, estimated, enforced and recorded."""
    body = await _body(request, _openai_shape, "input", (str, list))
    if isinstance(body, JSONResponse):
        return body
    provider, model = _route(request, body)
    tokens = _input_tokens(_openai_shape, _responses_messages(body), body, model)
    if isinstance(tokens, JSONResponse):
        return tokens
    settings = request.app.state.settings
    max_out = int(body.get("max_output_tokens") or settings.default_max_output_tokens)
    return await _openai_call(
        request, body, (provider, model), tokens, max_out, "/responses", wire="responses"
    )


def _responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses API input as chat messages, for counting."""
    raw = body["input"]
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    if isinstance(raw, str):
        return [*messages, {"role": "user", "content": raw}]
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("content"), (str, list)):
            messages.append({"role": str(item.get("role", "user")), "content": item["content"]})
    return messages


def _embedding_input_tokens(raw: Any, model: str) -> int | None:
    """Text, a list of texts, token ids or lists of token ids (counted by their length)."""
    if isinstance(raw, str):
        return count_text(raw, model).tokens
    if not isinstance(raw, list) or not raw:
        return None
    if all(isinstance(item, int) for item in raw):
        return len(raw)
    return sum(
        count_text(item, model).tokens if isinstance(item, str) else len(item)
        for item in raw
        if isinstance(item, (str, list))
    )


def _anthropic_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = list(body["messages"])
    system = body.get("system")
    if isinstance(system, (str, list)):
        messages.insert(0, {"role": "system", "content": system})
    return messages


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    """Anthropic Messages, streamed or not, estimated, enforced and recorded."""
    body = await _body(request, _anthropic_shape, "messages")
    if isinstance(body, JSONResponse):
        return body
    model = body["model"]
    tokens = _input_tokens(_anthropic_shape, _anthropic_messages(body), body, model)
    if isinstance(tokens, JSONResponse):
        return tokens
    max_out = int(body.get("max_tokens") or request.app.state.settings.default_max_output_tokens)
    metadata = body.get("metadata") or {}
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    admitted = await _admit(
        request, _anthropic_shape, "anthropic", model, tokens, max_out, _who(request, user)
    )
    if isinstance(admitted, JSONResponse):
        return admitted
    return await _proxy(
        request,
        _anthropic_shape,
        admitted,
        f"{admitted.upstream.base_url}/v1/messages",
        _anthropic_headers(request, admitted.upstream),
        await request.body(),  # as the caller sent it
        bool(body.get("stream")),
        lambda d: anthropic_usage(d.get("usage")),
        hide_usage_chunk=False,
        wire="anthropic",
    )


def _anthropic_headers(request: Request, upstream: Upstream) -> dict[str, str]:
    headers = {
        "x-api-key": upstream.api_key,
        "anthropic-version": request.headers.get("anthropic-version", "2023-06-01"),
    }
    if request.headers.get("anthropic-beta"):
        headers["anthropic-beta"] = request.headers["anthropic-beta"]
    return headers


@router.post("/v1/messages/count_tokens")
async def count_message_tokens(request: Request) -> Response:
    """Anthropic's token counting: free at the provider, so passed through and not recorded."""
    gateway: flow.Gateway = request.app.state.gateway
    try:
        upstream = await run_in_threadpool(gateway.upstream, _secret(request), "anthropic")
    except (flow.Refused, ApiError, SQLAlchemyError) as exc:
        return _refusal(_anthropic_shape, exc)
    client: aiohttp.ClientSession = request.app.state.upstream
    headers = {**_anthropic_headers(request, upstream), "content-type": "application/json"}
    try:
        async with client.post(
            f"{upstream.base_url}/v1/messages/count_tokens",
            data=await request.body(),
            headers=headers,
            allow_redirects=False,
        ) as answer:
            content = await answer.read()
    except Exception as exc:
        return _upstream_failed(_anthropic_shape, exc)
    media = answer.headers.get("content-type", "application/json")
    return Response(content, answer.status, _passed_headers(answer), media)


def _listed_id(provider: str, model: str) -> str:
    """The name that routes a call to the model: other providers' models carry a prefix."""
    return model if provider in ("openai", "anthropic") else f"{provider}/{model}"


async def _models(request: Request) -> list[dict[str, Any]] | JSONResponse:
    """Every catalog model of the providers the caller's organization has keys for."""
    from llmledger.gateway.credentials import configured_providers

    state = request.app.state
    try:
        providers = await run_in_threadpool(configured_providers, state.sessions, _secret(request))
    except SQLAlchemyError as exc:
        return _refusal(_openai_shape, exc)
    if providers is None:
        return JSONResponse(
            _openai_shape("unknown or revoked llmledger API key", "invalid_api_key"),
            status_code=401,
        )
    versions = sorted(
        state.price_book.current_versions(datetime.now(UTC)), key=lambda v: (v.provider, v.model)
    )
    return [
        {
            "id": _listed_id(v.provider, v.model),
            "object": "model",
            "created": 0,
            "owned_by": v.provider,
        }
        for v in versions
        if v.provider in providers
    ]


@router.get("/v1/models")
async def models(request: Request) -> Response:
    """The models this organization may call (OpenAI's list format)."""
    found = await _models(request)
    if isinstance(found, JSONResponse):
        return found
    return JSONResponse({"object": "list", "data": found})


@router.get("/v1/models/{model_id:path}")
async def model(request: Request, model_id: str) -> Response:
    """One model this organization may call, or 404 in OpenAI's shape."""
    found = await _models(request)
    if isinstance(found, JSONResponse):
        return found
    for item in found:
        if item["id"] == model_id:
            return JSONResponse(item)
    message = f"the model {model_id!r} does not exist or this organization has no key for it"
    return JSONResponse(_openai_shape(message, "model_not_found"), status_code=404)
