"""Several real llmledger server processes on Unix sockets, for multi-process tests and
benchmarks. The app is imported once, then one uvicorn server is forked per socket: each is
a process of its own (own engine, own counter store), without paying the imports each time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

LAUNCHER = """
import os, signal, sys
import uvicorn
import llmledger.app

children = []
for sock in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        uvicorn.run(
            "llmledger.app:create_app", factory=True, uds=sock, log_level="warning",
            access_log=False,
        )
        os._exit(0)
    children.append(pid)

def stop(*_):
    for pid in children:
        os.kill(pid, signal.SIGTERM)

signal.signal(signal.SIGTERM, stop)
for pid in children:
    os.waitpid(pid, 0)
"""


@contextlib.contextmanager
def server_processes(
    directory: Path, count: int, env: dict[str, str], startup_seconds: float = 60
) -> Iterator[list[str]]:
    """`count` servers on sockets in `directory`; yields the socket paths. Their output goes
    to servers.log there."""
    sockets = [str(directory / f"s{n}-{os.getpid()}.sock") for n in range(count)]
    log = directory / "servers.log"
    full_env = {
        **os.environ,
        "LLMLEDGER_ENV": "test",
        "LLMLEDGER_WORKER_IN_PROCESS": "false",
        **env,
    }
    with log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *sockets],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so none is left behind
        )
    try:
        deadline = time.monotonic() + startup_seconds
        for sock in sockets:
            while True:
                if launcher.poll() is not None:
                    raise RuntimeError(
                        f"servers exited with {launcher.returncode}:\n{log.read_text()}"
                    )
                with (
                    contextlib.suppress(httpx.HTTPError),
                    httpx.Client(transport=httpx.HTTPTransport(uds=sock)) as client,
                ):
                    if client.get("http://server/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"servers did not start:\n{log.read_text()}")
                time.sleep(0.05)
        yield sockets
    finally:
        launcher.terminate()
        try:
            launcher.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


@contextlib.contextmanager
def new_postgresql_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the caller's own on the server `admin_url` reaches, dropped
    afterwards (even if the caller barred connections to it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
