# The seed's locustfile (shared/seed/lab3-performance-testing.md, Part 2, Task 2.2), for the client-overhead benchmark.
#
# BENCH_STREAM=0 runs it exactly as the seed wrote it (non-streaming POSTs, `max_tokens`). BENCH_STREAM=1 adapts it
# to do what tokengate does: ask for a stream, read it line by line, parse each `data:` event as JSON, and report the
# time to the first content event as its own locust entry ("TTFT"), so both clients do the same work per request.
# The stream is read to its end, never left early: python-requests closes a connection whose body was not fully read
# (a new TCP connection per request would charge locust for connects the other clients do not make).
# BENCH_WAIT: "between:1:3" (the seed) or "constant:0" (back to back). BENCH_MIX: "seed" (completion x1, chat x3,
# 20 tokens, "Hello world" / "Hi") or "chat" (chat only). BENCH_MAX_TOKENS overrides the token count.
import json
import os
import time

from locust import HttpUser, between, constant, task

STREAM = os.environ.get("BENCH_STREAM", "0") == "1"
MIX = os.environ.get("BENCH_MIX", "seed")
MAX_TOKENS = int(os.environ.get("BENCH_MAX_TOKENS", "20"))
_wait = os.environ.get("BENCH_WAIT", "between:1:3").split(":")


def _wait_time():
    if _wait[0] == "constant":
        return constant(float(_wait[1]))
    return between(float(_wait[1]), float(_wait[2]))


class LLaMAUser(HttpUser):
    wait_time = _wait_time()

    def _post(self, path, body):
        if not STREAM:
            self.client.post(path, json=body)
            return
        body = dict(body, stream=True)
        start = time.perf_counter()
        first = None
        with self.client.post(path, json=body, stream=True) as resp:
            for line in resp.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    continue
                event = json.loads(data)
                if first is None:
                    choices = event.get("choices")
                    text = event.get("content") if choices is None else (
                        choices[0].get("delta", {}).get("content") if choices else None)
                    if text:
                        first = time.perf_counter()
                        self.environment.events.request.fire(
                            request_type="TTFT", name=path, response_time=(first - start) * 1000,
                            response_length=0, exception=None, context={})

    @task(1 if MIX == "seed" else 0)
    def completion(self):
        self._post("/completion", {
            "prompt": "Hello world",
            "max_tokens": MAX_TOKENS,
        })

    @task(3)
    def chat(self):
        self._post("/v1/chat/completions", {
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": MAX_TOKENS,
        })
