"""Compare the OpenAI SDK's httpx2 transport with its aiohttp transport under concurrency.

Runs the fake OpenAI server in-process (its own thread and event loop) with a fixed latency per
request, then fires waves of concurrent chat completions through each transport over kept-alive
connections (one warm-up wave opens the pool first). Prints the median wall time and throughput of
each wave size, and the same waves through the product's adapter (the chosen transport plus our
deadline, URL check and error translation).

    .venv/bin/python -m benchmarks.llm_transport [--rounds 5] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import openai

from providers.llm.clients import close_clients
from providers.llm.registry import create_adapter
from providers.llm.transport import TRANSPORT, build_http_client
from providers.llm.types import CompletionRequest, Message, ProviderSettings
from tests.fakes.openai_server import FakeOpenAIServer

WAVES = (64, 200)
MESSAGES = (Message(role="user", content="Summarise the benchmark in one sentence."),)


async def _median_wave_s(call: Callable[[], Awaitable[object]], size: int, rounds: int) -> float:
    await asyncio.gather(*(call() for _ in range(size)))  # warm-up: opens the kept-alive pool
    walls = []
    for _ in range(rounds):
        started = time.perf_counter()
        await asyncio.gather(*(call() for _ in range(size)))
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


async def _sdk_waves(settings: ProviderSettings, transport: str, rounds: int) -> dict[int, float]:
    http_client = build_http_client(openai, settings, transport=transport)
    client = openai.AsyncOpenAI(api_key=settings.api_key, base_url=settings.base_url, http_client=http_client)
    messages = [{"role": "user", "content": MESSAGES[0].content}]

    def call() -> Awaitable[object]:
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    try:
        return {size: await _median_wave_s(call, size, rounds) for size in WAVES}
    finally:
        await client.close()


async def _adapter_waves(settings: ProviderSettings, rounds: int) -> dict[int, float]:
    adapter = create_adapter(settings)
    request = CompletionRequest(messages=MESSAGES, model="gpt-4o-mini")
    try:
        return {size: await _median_wave_s(lambda: adapter.complete(request), size, rounds) for size in WAVES}
    finally:
        await close_clients()


def _report(label: str, waves: dict[int, float]) -> None:
    for size, wall in waves.items():
        print(f"{label:<22} {size:>4} calls  wall {wall * 1000:8.1f} ms  {size / wall:8.1f} calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    with FakeOpenAIServer(latency_s=args.latency_ms / 1000) as server:
        settings = ProviderSettings(
            kind="openai_compatible",
            api_key=server.api_key,
            base_url=server.base_url,
            allow_private_urls=True,
        )
        print(f"fake server latency {args.latency_ms:.0f} ms, median of {args.rounds} waves after a warm-up")
        serial_s = WAVES[-1] * args.latency_ms / 1000
        print(f"(one call after another, {WAVES[-1]} calls would take {serial_s:.1f} s)")
        for transport in ("httpx", "aiohttp"):
            _report(f"sdk + {transport}", asyncio.run(_sdk_waves(settings, transport, args.rounds)))
        _report(f"adapter ({TRANSPORT})", asyncio.run(_adapter_waves(settings, args.rounds)))


if __name__ == "__main__":
    main()
