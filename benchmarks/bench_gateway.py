"""The gateway beside LiteLLM's proxy: the same load, both single-process, against the same
fake upstream on loopback. llmledger runs with a budget and usage recording on.

Prints requests/s with concurrent clients (plain and streamed calls) and the latency each
proxy adds over calling the upstream directly (p50, p95, one client), and the ratios. The
load generator is aiohttp, light enough that the proxy, not the client, is what saturates.
LiteLLM is installed from PyPI into its own virtualenv (benchmarks/.litellm) the first time.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from server import database, free_port  # noqa: E402

LITELLM_VENV = HERE / ".litellm"
UPSTREAM_KEY = "sk-upstream-test"
MODEL = "gpt-4o-mini"
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say something about budgets."}],
    "max_tokens": 300,
}
PAYLOAD = json.dumps(BODY).encode()
STREAMED = json.dumps({**BODY, "stream": True}).encode()  # 10 server-sent events a call
SEQUENTIAL = 300  # requests for latency, one client
CONCURRENT = 32  # clients for throughput
SECONDS = 8.0
# Budget counters for llmledger: "redis" (the configuration for high rates) or "sql".
BACKEND = os.environ.get("LLMLEDGER_BENCH_BACKEND", "redis")


@contextmanager
def process(
    args: list[str], url: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[str]:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        args, env={**os.environ, **(env or {})}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: see {log}")
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"{args} did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def litellm_python() -> Path:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        print("installing litellm[proxy] into benchmarks/.litellm (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
    return python


def prepare_llmledger(database_url: str, upstream: str) -> str:
    """A migrated database, an organization with the upstream's key and a monthly budget
    large enough never to block; returns the organization's API key."""
    from llmledger.accounts.service import create_api_key, create_organization
    from llmledger.budgets.schemas import BudgetIn
    from llmledger.budgets.service import create_budget
    from llmledger.gateway.credentials import set_provider
    from llmledger.kit.db import make_engine, make_sessionmaker, unit_of_work
    from llmledger.kit.migrate import upgrade_database
    from llmledger.kit.settings import Settings
    from llmledger.pricing.repository import sync_catalog

    upgrade_database(database_url)
    engine = make_engine(database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        sync_catalog(session)
        org = create_organization(session, f"bench-{uuid.uuid4().hex[:8]}")
        key = create_api_key(session, org).secret
        set_provider(
            session,
            Settings(database_url=database_url),
            org.id,
            "openai",
            UPSTREAM_KEY,
            f"{upstream}/v1",
        )
        create_budget(
            session, org.id, BudgetIn(scope="organization", monthly_limit=1_000_000, action="block")
        )
    engine.dispose()
    return key


def _client(key: str, connections: int) -> aiohttp.ClientSession:
    # aiohttp as the load generator: an httpx client saturates a core at about 700 requests/s
    # here (its pool polls every connection's socket per request), which capped the figures.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _call(client: aiohttp.ClientSession, url: str, payload: bytes = PAYLOAD) -> None:
    async with client.post(url, data=payload) as r:
        body = await r.read()
        if r.status >= 400:
            raise RuntimeError(f"{url}: {r.status} {body[:300]!r}")


async def latencies(url: str, key: str, n: int) -> list[float]:
    async with _client(key, 1) as client:
        for _ in range(20):
            await _call(client, url)
        found = []
        for _ in range(n):
            start = time.perf_counter()
            await _call(client, url)
            found.append((time.perf_counter() - start) * 1000)
        return found


async def throughput(url: str, key: str, payload: bytes = PAYLOAD) -> float:
    async with _client(key, CONCURRENT) as client:
        for _ in range(20):
            await _call(client, url)
        done = 0
        deadline = time.perf_counter() + SECONDS

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await _call(client, url, payload)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
        return done / (time.perf_counter() - start)


def forget_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ.get("LLMLEDGER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


Figures = tuple[float, float, float, float]  # p50 ms, p95 ms, requests/s, streamed calls/s


def measure(url: str, key: str) -> Figures:
    found = asyncio.run(latencies(url, key, SEQUENTIAL))
    p50 = statistics.median(found)
    p95 = statistics.quantiles(found, n=20)[18]
    return p50, p95, asyncio.run(throughput(url, key)), asyncio.run(throughput(url, key, STREAMED))


def main() -> None:
    py = sys.executable
    uvicorn_args = ["-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    with tempfile.TemporaryDirectory() as tmp:
        up_port, ours_port, theirs_port = free_port(), free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        fake = [py, *uvicorn_args, "tests.gateway.fake_upstream:app", "--port", str(up_port)]
        with process(fake, f"{upstream}/docs"), database("postgresql", tmp) as db:
            direct = measure(f"{upstream}/v1/chat/completions", UPSTREAM_KEY)
            key = prepare_llmledger(db, upstream)
            prefix = f"llmledger-bench-{uuid.uuid4().hex[:8]}"
            ours_env = {
                "LLMLEDGER_DATABASE_URL": db,
                "LLMLEDGER_WORKER_IN_PROCESS": "false",
                "LLMLEDGER_BUDGET_BACKEND": BACKEND,
                "LLMLEDGER_REDIS_PREFIX": prefix,
            }
            ours_cmd = [
                py,
                *uvicorn_args,
                "llmledger.app:create_app",
                "--factory",
                "--port",
                str(ours_port),
            ]
            with process(
                ours_cmd, f"http://127.0.0.1:{ours_port}/healthz", ours_env, Path(tmp) / "ours.log"
            ):
                ours = measure(f"http://127.0.0.1:{ours_port}/v1/chat/completions", key)
            forget_redis_keys(prefix)
            config = Path(tmp) / "litellm.yaml"
            config.write_text(
                "model_list:\n"
                f"  - model_name: {MODEL}\n"
                "    litellm_params:\n"
                f"      model: openai/{MODEL}\n"
                f"      api_base: {upstream}/v1\n"
                f"      api_key: {UPSTREAM_KEY}\n"
            )
            theirs_cmd = [
                str(litellm_python().parent / "litellm"),
                "--config",
                str(config),
                "--port",
                str(theirs_port),
                "--num_workers",
                "1",
            ]
            master = f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex}"
            theirs_env = {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "LITELLM_MASTER_KEY": master,
            }
            with process(
                theirs_cmd,
                f"http://127.0.0.1:{theirs_port}/health/liveliness",
                theirs_env,
                Path(tmp) / "litellm.log",
            ):
                theirs = measure(f"http://127.0.0.1:{theirs_port}/v1/chat/completions", master)
    print(
        f"upstream direct: p50 {direct[0]:.2f} ms, p95 {direct[1]:.2f} ms, {direct[2]:,.0f} req/s, "
        f"{direct[3]:,.0f} streamed/s"
    )
    for name, (p50, p95, rps, streamed) in (
        (f"llmledger ({BACKEND} budgets)", ours),
        ("litellm", theirs),
    ):
        print(
            f"{name}: {rps:,.0f} req/s, {streamed:,.0f} streamed/s ({CONCURRENT} clients) | "
            f"added latency p50 {p50 - direct[0]:.2f} ms, p95 {p95 - direct[1]:.2f} ms (one client)"
        )
    print(
        f"ratio: llmledger/litellm throughput {ours[2] / theirs[2]:.2f}x, streamed "
        f"{ours[3] / theirs[3]:.2f}x | added p50 {(ours[0] - direct[0]):.2f} vs "
        f"{(theirs[0] - direct[0]):.2f} ms (target: >= 4x throughput, <= 2 ms added at p50)"
    )


if __name__ == "__main__":
    main()
