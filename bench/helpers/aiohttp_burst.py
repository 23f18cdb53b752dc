# The seed's aiohttp throughput script (shared/seed/lab3-performance-testing.md, Part 1, Task 1.2), for the
# client-overhead benchmark. The seed fires one burst of `num_requests` concurrent requests; a single burst is too
# short to measure CPU, so this repeats bursts (one session) until `duration` seconds have passed. `--stream` adapts it to do what
# tokengate does (ask for a stream, parse each `data:` event as JSON, time the first content event); without it the
# requests are the seed's (`await resp.json()`).
#
# usage: aiohttp_burst.py URL --burst N --duration S [--stream] [--path /v1/chat/completions] [--max-tokens 32]
import argparse
import asyncio
import json
import sys
import time

import aiohttp


async def measure_throughput(session, url, path, num_requests, max_tokens, stream, ttfts):
    async def make_request(session, i):
        start = time.time()
        if path == "/completion":
            body = {"prompt": f"Test {i}", "max_tokens": max_tokens}
        else:
            body = {"messages": [{"role": "user", "content": f"Test {i}"}], "max_tokens": max_tokens}
        if stream:
            body["stream"] = True
        async with session.post(f"{url}{path}", json=body) as resp:
            if not stream:
                await resp.json()
                return time.time() - start
            first = None
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].rstrip(b"\r\n")
                if data == b"[DONE]":
                    continue  # read to the end: a response left unread closes its connection
                event = json.loads(data)
                if first is None:
                    choices = event.get("choices")
                    text = event.get("content") if choices is None else (
                        choices[0].get("delta", {}).get("content") if choices else None)
                    if text:
                        first = time.time()
                        ttfts.append(first - start)
            return time.time() - start

    tasks = [make_request(session, i) for i in range(num_requests)]
    return await asyncio.gather(*tasks)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--burst", type=int, default=100)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--path", default="/completion")
    p.add_argument("--max-tokens", type=int, default=10)
    a = p.parse_args()
    print(json.dumps({"ready": True}), flush=True)
    ttfts = []
    latencies = []
    end = time.time() + a.duration
    # One ClientSession (connection pool) for all bursts, as one long call of the seed's function would have: a new
    # session per burst would charge aiohttp a TCP connect per request that the other clients do not pay.
    async with aiohttp.ClientSession() as session:
        while time.time() < end:
            latencies += await measure_throughput(session, a.url, a.path, a.burst, a.max_tokens, a.stream, ttfts)
    print(json.dumps({"requests": len(latencies), "mean_latency": sum(latencies) / max(1, len(latencies))}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
