"""FastAPI dependencies: the request's session, the caller, the price book."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from llmledger.accounts.service import Principal, authenticate
from llmledger.budgets.enforcement import Enforcer
from llmledger.kit.db import unit_of_work
from llmledger.kit.errors import ApiError
from llmledger.kit.settings import Settings
from llmledger.pricing.book import PriceBook


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: committed if the handler returns, rolled back if it raises."""
    with unit_of_work(request.app.state.sessions) as session:
        yield session


# Function scope: the commit happens before the response is sent, so a failed commit is
# the caller's 500, not a silent loss after a 200.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_price_book(request: Request) -> PriceBook:
    book: PriceBook = request.app.state.price_book
    return book


PriceBookDep = Annotated[PriceBook, Depends(get_price_book)]


def get_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthenticated", "send an API key: Authorization: Bearer <key>")
    principal = authenticate(session, secret.strip())
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked API key")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_enforcer(request: Request) -> Enforcer:
    enforcer: Enforcer = request.app.state.enforcer
    return enforcer


EnforcerDep = Annotated[Enforcer, Depends(get_enforcer)]


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
