"""Real servers on loopback: the fake upstream, and llmledger pointed at it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from llmledger.app import create_app
from llmledger.gateway.credentials import set_provider
from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
from llmledger.kit.settings import Settings
from tests.conftest import Tenant, create_tenant
from tests.gateway import fake_upstream


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    with serve(fake_upstream.app) as url:
        yield url


@dataclass
class Gateway:
    url: str
    settings: Settings
    database_url: str
    app: Any

    def flush(self) -> None:
        """Wait until every finished call is written (the gateway records behind)."""
        self.app.state.gateway.recorder.flush()


@pytest.fixture(scope="session")
def gateway(database_url: str, upstream_url: str) -> Iterator[Gateway]:
    settings = Settings(
        database_url=database_url,
        env="test",
        worker_in_process=False,
        openai_base_url=f"{upstream_url}/v1",
        anthropic_base_url=upstream_url,
    )
    app = create_app(settings)
    with serve(app) as url:
        yield Gateway(url, settings, database_url, app)


@pytest.fixture
def caller(gateway: Gateway) -> Tenant:
    """An organization whose OpenAI and Anthropic keys are stored in llmledger."""
    tenant = create_tenant(gateway.database_url)
    engine = make_engine(gateway.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        for provider in ("openai", "anthropic"):
            set_provider(
                session, gateway.settings, tenant.org_id, provider, fake_upstream.UPSTREAM_KEY
            )
    engine.dispose()
    return tenant
