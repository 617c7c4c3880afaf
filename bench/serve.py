"""``serve``: the real-time service and its online store, on loopback.

- Materializing a night of ``CHURNOPS_BENCH_CUSTOMERS`` x 45 features into Redis (a
  synthetic frame of that size: the write does not depend on the values), then the
  atomic switch; the keys are deleted after.
- A load test of ``churnops serve`` (uvicorn, 1 and 2 workers) on a small trained state
  (2,000 customers, its champion compiled, the night materialized): ``POST /v1/score``
  with random customers, from a load generator in a process of its own (asyncio, raw
  HTTP/1.1 keep-alive connections: an HTTP client library would cost more than the
  service). Open loop at 500 requests/s (latency from each request's scheduled time, so a
  stall is not hidden), and closed loop at saturation (64 connections). Each run stops
  after ``LOAD_SECONDS`` or ``MAX_REQUESTS``, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.harness import BENCH_CUSTOMERS, measure

FEATURES = 45
LOAD_SECONDS = 10.0
MAX_REQUESTS = 40_000
OPEN_LOOP_RPS = 500
SATURATION_CONNECTIONS = 64
SERVE_CUSTOMERS = {"CHURNOPS_SIM_CUSTOMERS": "2000", "CHURNOPS_SIM_DAYS": "420"}
KEY = f"bench-{uuid.uuid4().hex}"


def materialize_synthetic(customers: int, prefix: str) -> dict:
    """Timed: ``OnlineStore.materialize`` of customers x 45 float64 (NaN included)."""
    import dataclasses

    import numpy as np

    from churnops.online import OnlineStore
    from churnops.settings import load_settings

    settings = load_settings()
    store = OnlineStore(dataclasses.replace(settings.online, prefix=prefix))
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(customers, FEATURES))
    matrix[rng.random(matrix.shape) < 0.02] = np.nan
    ids = np.arange(1, customers + 1, dtype=np.int64)
    before = int(store.client.info("memory")["used_memory"])
    try:
        result = store.materialize(
            dt.date(2026, 1, 1), ids, matrix, [f"f{i}" for i in range(FEATURES)]
        )
        used = int(store.client.info("memory")["used_memory"]) - before
        got = store.read([1, customers])
        assert got is not None and all(row is not None for row in got[2])
    finally:
        store.drop_all()
    return {
        "seconds": result.seconds,
        "rows": customers,
        "features": FEATURES,
        "rows_per_s": int(customers / result.seconds),
        "redis_mb": round(used / 2**20),
    }


def prepare_service_state(state: str, prefix: str) -> dict:
    """Untimed: a small history, its champion, its last night scored and materialized."""
    from churnops.online import OnlineStore
    from churnops.online.materialize import materialize_night
    from churnops.pipeline import bootstrap_history
    from churnops.retrain import retrain
    from churnops.score import score_day
    from churnops.settings import load_settings
    from churnops.stores import stores_for

    settings = load_settings(
        {"CHURNOPS_STATE_DIR": state, "CHURNOPS_ONLINE_STORE_PREFIX": prefix, **SERVE_CUSTOMERS}
    )
    bootstrap_history(settings, say=lambda _line: None)
    stores = stores_for(settings)
    retrain(settings, stores.features, actor="bench", reason="serve bench champion")
    night = settings.simulation.history_end
    score_day(settings, stores.features, stores.scoring, night)
    result = materialize_night(stores.features, OnlineStore(settings.online), night)
    return {"rows": result.rows}


# ----------------------------------------------------------------------------- load
def _load(port: int, key: str, ids: list[int], rate: float | None, connections: int) -> dict:
    """The load generator (its own process): open loop at ``rate`` or closed loop."""
    import asyncio
    import json
    import random

    import numpy as np

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    began = time.perf_counter()
    stop_at = began + LOAD_SECONDS

    async def request(reader, writer, customer: int) -> int:
        body = json.dumps({"customer_id": customer}).encode()
        writer.write(
            b"POST /v1/score HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        return status

    async def closed_worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at and len(latencies) < MAX_REQUESTS:
            sent = time.perf_counter()
            status = await request(reader, writer, random.choice(ids))
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    async def open_loop() -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def worker() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while True:
                scheduled = await queue.get()
                if scheduled is None:
                    break
                status = await request(reader, writer, random.choice(ids))
                latencies.append(time.perf_counter() - scheduled)
                statuses[status] = statuses.get(status, 0) + 1
            writer.close()

        workers = [asyncio.create_task(worker()) for _ in range(connections)]
        sent = 0
        total = min(int(LOAD_SECONDS * rate), MAX_REQUESTS)
        start = time.perf_counter()
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                queue.put_nowait(start + sent / rate)  # the request's scheduled time
                sent += 1
            await asyncio.sleep(0.001)
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)

    async def main() -> None:
        if rate is None:
            await asyncio.gather(*(closed_worker() for _ in range(connections)))
        else:
            await open_loop()

    asyncio.run(main())
    elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    return {
        "seconds": elapsed,
        "requests": len(latencies),
        "rps": int(len(latencies) / elapsed),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "non_200": sum(n for s, n in statuses.items() if s != 200),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service(state: str, prefix: str, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    env |= {
        "CHURNOPS_STATE_DIR": state,
        "CHURNOPS_ONLINE_STORE_PREFIX": prefix,
        "CHURNOPS_SERVE_API_KEY": KEY,
        # Every request of the bench goes to the service, none is refused for its count.
        "CHURNOPS_SERVE_RATE_LIMIT": str(10**9),
        "CHURNOPS_SERVE_SAMPLE_SHARE": "0",
        **SERVE_CUSTOMERS,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "churnops.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    ready = 0
    while ready < 3 * workers:  # every worker answers ready (they share the port)
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"churnops serve did not become ready: see {log}")
        try:
            ready += httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            time.sleep(0.5)
    return process, port


def _ids(state: str) -> list[int]:
    from churnops.settings import load_settings
    from churnops.stores import stores_for
    from churnops.warehouse import warehouse_for

    settings = load_settings({"CHURNOPS_STATE_DIR": state, **SERVE_CUSTOMERS})
    table = stores_for(settings, read_only=True).features.night(settings.simulation.history_end)
    ids = [int(i) for i in table.column("customer_id").to_pylist()]
    warehouse_for(settings, read_only=True).dispose()
    return ids


def bench_serve(tmp: Path) -> Iterator[tuple[str, dict]]:
    prefix = f"churnops-bench-{uuid.uuid4().hex[:8]}"
    yield (
        f"materialize {BENCH_CUSTOMERS:,} x {FEATURES} into Redis + switch",
        measure(materialize_synthetic, BENCH_CUSTOMERS, f"{prefix}-synthetic"),
    )
    state = str(tmp / "serve-state")
    measure(prepare_service_state, state, prefix)
    ids = _ids(state)
    try:
        for workers in (1, 2):
            process, port = _service(state, prefix, workers, tmp / f"serve-{workers}.log")
            try:
                measure(_load, port, KEY, ids[:50], 100.0, 4)  # warm-up: JIT, connections
                yield (
                    f"POST /v1/score at {OPEN_LOOP_RPS} rps, {workers} worker(s)",
                    measure(_load, port, KEY, ids, float(OPEN_LOOP_RPS), 32),
                )
                yield (
                    f"POST /v1/score at saturation ({SATURATION_CONNECTIONS} conns), "
                    f"{workers} worker(s)",
                    measure(_load, port, KEY, ids, None, SATURATION_CONNECTIONS),
                )
            finally:
                os.killpg(process.pid, 15)
                process.wait(30)
    finally:
        from churnops.online import OnlineStore
        from churnops.settings import load_settings

        OnlineStore(load_settings({"CHURNOPS_ONLINE_STORE_PREFIX": prefix}).online).drop_all()
