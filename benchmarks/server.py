"""Start a real llmledger server in a subprocess for benchmarks, with its own database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.servers
from tests.servers import new_postgresql_database

PG_ADMIN = os.environ.get("LLMLEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Server:
    url: str
    key: str
    database_url: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def database(kind: str, tmpdir: str) -> Iterator[str]:
    """A new, empty database of the given kind, removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmpdir}/bench-{uuid.uuid4().hex[:8]}.db"
        return
    with new_postgresql_database(PG_ADMIN, "llmledger_bench") as url:
        yield url


@contextlib.contextmanager
def running_server(database_url: str) -> Iterator[Server]:
    from llmledger.accounts.service import create_api_key, create_organization
    from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
    from llmledger.kit.migrate import upgrade_database
    from llmledger.pricing.repository import sync_catalog

    upgrade_database(database_url)
    engine = make_engine(database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        sync_catalog(session)
        org = create_organization(session, f"bench-{uuid.uuid4().hex[:8]}")
        key = create_api_key(session, org).secret
    engine.dispose()

    port = free_port()
    env = {**os.environ, "LLMLEDGER_DATABASE_URL": database_url, "LLMLEDGER_PORT": str(port)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "llmledger.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        yield Server(url, key, database_url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
