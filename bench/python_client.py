"""Submits JOBS jobs from one Python process with `peyk.AsyncPeyk` and, the
same way, through raw `httpx.AsyncClient` (the same body, idempotency key
included; as many connections as calls in flight), at each level of
IN_FLIGHT (16, the client's default pool, and 64), rounds alternating
raw/client. Prints jobs/s of each round, the medians, and the client's
overhead per call: how much longer a call takes through the client, as a
share of the raw round trip. Then the same jobs in 1,000-job batches
(`jobs.submit_many`), and the client's own CPU per call without the network
(building the body and the call). Run by bench/python_client.sh."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid

import httpx

import peyk
from peyk._calls import Call, job_body

JOBS = int(os.environ.get("JOBS", "10000"))
IN_FLIGHT = [int(n) for n in os.environ.get("IN_FLIGHT", "16 64").split()]
ROUNDS = int(os.environ.get("ROUNDS", "3"))
PAYLOAD = {"url": "https://example.com/hooks/peyk", "body": {"event": "report.ready", "patient_ref": "P-1001"}}


async def through_client(jobs: int, in_flight: int) -> float:
    async with peyk.AsyncPeyk(max_connections=in_flight) as client:
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                await client.submit("webhook", PAYLOAD)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return jobs / (time.perf_counter() - started)


async def through_httpx(jobs: int, in_flight: int) -> float:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    headers = {"Authorization": f"Bearer {os.environ['PEYK_API_KEY']}"}
    async with httpx.AsyncClient(base_url=os.environ["PEYK_URL"], headers=headers, limits=limits, timeout=30) as http:
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                body = {"type": "webhook", "payload": PAYLOAD, "idempotency_key": f"py-{uuid.uuid4()}"}
                response = await http.post("/v1/jobs", json=body)
                response.raise_for_status()
                response.json()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        return jobs / (time.perf_counter() - started)


def offline_cost_us() -> float:
    """The client's own work per submission, no network: body and call."""
    started, n = time.perf_counter(), 100_000
    for _ in range(n):
        Call("POST", "/v1/jobs", json=job_body("webhook", PAYLOAD))
    return (time.perf_counter() - started) / n * 1e6


async def in_batches(jobs: int) -> float:
    """The same jobs through `jobs.submit_many`, 1,000 a request, two in flight."""
    async with peyk.AsyncPeyk(max_connections=2) as client:
        batch = [{"type": "webhook", "payload": PAYLOAD}] * 1000
        started = time.perf_counter()
        await asyncio.gather(*(client.jobs.submit_many(batch) for _ in range(jobs // 1000)))
        return jobs // 1000 * 1000 / (time.perf_counter() - started)


async def main() -> None:
    await through_httpx(500, 16)  # warm-up: connections, the API's caches
    for in_flight in IN_FLIGHT:
        raw, client = [], []
        for n in range(ROUNDS):
            raw.append(await through_httpx(JOBS, in_flight))
            client.append(await through_client(JOBS, in_flight))
            print(f"{in_flight} in flight, round {n + 1}: raw httpx {raw[-1]:,.0f} jobs/s, AsyncPeyk {client[-1]:,.0f} jobs/s", flush=True)
        raw_rate, client_rate = statistics.median(raw), statistics.median(client)
        overhead = raw_rate / client_rate - 1  # extra time per call, as a share of the raw call's
        print(
            f"{in_flight} in flight, median: raw httpx {raw_rate:,.0f} jobs/s, AsyncPeyk {client_rate:,.0f} jobs/s ({client_rate / raw_rate:.2f}x)"
        )
        print(f"{in_flight} in flight, client overhead per call: {overhead * 100:+.1f} % of the raw round trip ({JOBS:,} jobs)")
    batched = [await in_batches(JOBS) for _ in range(ROUNDS)]
    print(f"jobs.submit_many, 1,000 a request: {', '.join(f'{r:,.0f}' for r in batched)} jobs/s (median {statistics.median(batched):,.0f})")
    print(f"client's own work per call, no network: {offline_cost_us():.1f} us")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
