"""One JSON error shape: {"error": code, "message": ..., "errors": [{field, message}]}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """An error a caller can act on; raised by services and endpoints alike."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = errors or []


class FieldError(ApiError):
    """Bad input in one named field (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            422, "invalid_request", f"{field}: {message}", [{"field": field, "message": message}]
        )


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(404, "not_found", message)


def field_errors(
    errors: list[Any], drop_prefix: tuple[str, ...] = ("body",)
) -> list[dict[str, str]]:
    """pydantic's error list as [{field: "events.3.input_tokens", message: ...}]."""
    found = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        while loc and loc[0] in drop_prefix:
            loc = loc[1:]
        message = str(error.get("msg", "invalid value"))
        found.append({"field": ".".join(loc) or "body", "message": message})
    return found


def validation_failed(errors: list[dict[str, str]]) -> JSONResponse:
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse(
        status_code=422,
        content={"error": "invalid_request", "message": summary, "errors": errors},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(status_code=exc.status_code, content=body)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_failed(field_errors(list(exc.errors()), ("body", "query", "path")))

    @app.exception_handler(ValidationError)
    async def _model_invalid(_request: Request, exc: ValidationError) -> JSONResponse:
        return validation_failed(field_errors(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"error": "http_error", "message": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )
