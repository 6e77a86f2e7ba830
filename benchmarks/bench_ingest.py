"""Usage events per second recorded through the batch API (a real server process) into
SQLite and PostgreSQL, beside the database's own bulk insert of the same rows (the ceiling)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import database, running_server

BATCH = 1000
BATCHES = 30
CLIENTS = 4
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "o3"]


def make_batch(run: str, n: int) -> dict[str, list[dict[str, object]]]:
    return {
        "events": [
            {
                "model": MODELS[i % len(MODELS)],
                "input_tokens": 1000 + i,
                "cached_input_tokens": i % 500,
                "output_tokens": 200 + i % 300,
                "user": f"user{i % 50}@example.com",
                "team": f"team{i % 5}",
                "prompt_id": f"prompt-{i % 20}",
                "client_request_id": f"{run}-{n}-{i}",
            }
            for i in range(BATCH)
        ]
    }


async def post_all(url: str, key: str) -> float:
    run = uuid.uuid4().hex[:8]
    batches = [make_batch(run, n) for n in range(BATCHES)]
    headers = {"Authorization": f"Bearer {key}"}
    queue: asyncio.Queue[dict[str, list[dict[str, object]]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        await client.post("/api/v1/usage", json=make_batch("warm", 0))

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                r = await client.post("/api/v1/usage", json=body)
                if r.status_code != 201 or r.json()["recorded"] != BATCH:
                    raise RuntimeError(f"batch failed: {r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return BATCH * BATCHES / (time.perf_counter() - start)


def raw_insert_rate(database_url: str) -> float:
    """The same number of rows inserted straight through SQLAlchemy Core: no HTTP, no
    validation, no pricing. What the database alone can take."""
    from llmledger.kit.db import make_engine
    from llmledger.models import Organization, UsageEvent

    engine = make_engine(database_url)
    with engine.begin() as conn:
        org_id = conn.execute(
            Organization.__table__.insert().values(
                name=f"raw-{uuid.uuid4().hex[:6]}",
                time_zone="UTC",
                plan="free",
                created_at=datetime.now(UTC),
            )
        ).inserted_primary_key[0]
    now = datetime.now(UTC)
    rows = [
        {
            "organization_id": org_id,
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 1000,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "output_tokens": 200,
            "reasoning_tokens": 0,
            "pricing_status": "priced",
            "cost_total": Decimal("0.0045"),
            "status": "success",
            "source": "api",
            "occurred_at": now,
            "recorded_at": now,
            "client_request_id": f"raw-{n}-{i}",
        }
        for n in range(BATCHES)
        for i in range(BATCH)
    ]
    start = time.perf_counter()
    for n in range(BATCHES):
        with engine.begin() as conn:
            conn.execute(UsageEvent.__table__.insert(), rows[n * BATCH : (n + 1) * BATCH])
    rate = len(rows) / (time.perf_counter() - start)
    engine.dispose()
    return rate


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "postgresql"):
            with database(kind, tmp) as url:
                with running_server(url) as server:
                    ours = asyncio.run(post_all(server.url, server.key))
                raw = raw_insert_rate(url)
            print(
                f"{kind}: batch API {ours:,.0f} events/s "
                f"({BATCHES} x {BATCH} events, {CLIENTS} clients) | "
                f"bare Core insert {raw:,.0f} rows/s | ratio {ours / raw:.2f}"
            )


if __name__ == "__main__":
    main()
