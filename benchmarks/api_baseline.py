"""Requests/s and p50/p99 of authenticated `GET /api/auth/me` and `GET /api/users` under daphne with
32 concurrent clients, next to the bare liveness view on the same server, as a ratio.

    .venv/bin/python -m benchmarks.api_baseline [--database-url postgres://...] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import httpx

from benchmarks.common import Server, load

PASSWORD = "bench-password-123"


def register(url: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    response = httpx.post(
        f"{url}/api/auth/register",
        json={"org_name": "Bench", "email": email, "password": PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access"]


async def main(args) -> None:
    server = Server(args.database_url)
    try:
        token = register(server.url)
        auth = {"Authorization": f"Bearer {token}"}
        results = []
        for label, path, headers in (
            ("bare view GET /api/health/live", "/api/health/live", {}),
            ("authenticated GET /api/auth/me", "/api/auth/me", auth),
            ("authenticated GET /api/users", "/api/users", auth),
        ):
            await load(
                "warm-up",
                lambda c, p=path, h=headers: c.get(server.url + p, headers=h),
                concurrency=8,
                total=100,
            )
            result = await load(
                label,
                lambda c, p=path, h=headers: c.get(server.url + p, headers=h),
                concurrency=args.concurrency,
                total=args.requests,
            )
            results.append(result)
            print(result.line(), flush=True)
        bare = results[0]
        for result in results[1:]:
            print(f"{result.label}: {result.rps / bare.rps:.2f}x the bare view's throughput")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
