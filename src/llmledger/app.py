"""The ASGI application: REST API under /api/v1, health check, docs."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from llmledger import __version__
from llmledger.alerts.endpoints import router as alerts_router
from llmledger.alerts.worker import start_in_thread
from llmledger.budgets.backend import make_store
from llmledger.budgets.endpoints import router as budgets_router
from llmledger.budgets.enforcement import Enforcer
from llmledger.core.tokens import load_encodings
from llmledger.estimates.endpoints import router as estimates_router
from llmledger.gateway.endpoints import router as gateway_router
from llmledger.gateway.flow import Gateway
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.errors import install_error_handlers
from llmledger.kit.settings import Settings, get_settings
from llmledger.pricing.book import PriceBook
from llmledger.pricing.endpoints import router as prices_router
from llmledger.pricing.repository import load_catalog, sync_catalog
from llmledger.usage.endpoints import router as usage_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        with unit_of_work(sessions) as session:
            sync_catalog(session)  # no-op once seeded; covers a database migrated elsewhere
            app.state.price_book = PriceBook(load_catalog(session))
        load_encodings()  # the first preview or gateway call should not pay for it
        store = make_store(settings)
        app.state.engine = engine
        app.state.sessions = sessions
        app.state.settings = settings
        app.state.enforcer = Enforcer(store, timedelta(seconds=settings.reservation_ttl_seconds))
        app.state.gateway = Gateway(sessions, app.state.price_book, app.state.enforcer, settings)
        # The recorder and request threads share the interpreter lock; Python's default 5 ms
        # switch interval would let a recorder batch hold up a waiting request that long.
        sys.setswitchinterval(0.0005)
        worker = start_in_thread(sessions, store, settings) if settings.worker_in_process else None
        # aiohttp rather than httpx for the relay: httpcore's pool polls the socket of every
        # pooled connection on each request, which took half the gateway's time under load.
        app.state.upstream = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10.0, sock_read=settings.upstream_timeout_seconds
            ),
            connector=aiohttp.TCPConnector(limit=500, ttl_dns_cache=300),
        )
        yield
        await app.state.upstream.close()
        app.state.gateway.close()  # writes what the recorder still holds
        if worker is not None:
            thread, stop = worker
            stop.set()
            thread.join(timeout=10)
        engine.dispose()

    app = FastAPI(
        title="llmledger",
        version=__version__,
        summary="LLM token tracking and cost management",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)

    api = APIRouter(prefix="/api/v1")
    api.include_router(estimates_router)
    api.include_router(usage_router)
    api.include_router(prices_router)
    api.include_router(budgets_router)
    api.include_router(alerts_router)
    app.include_router(api)
    app.include_router(gateway_router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness and database reachability."""
        with app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    return app
