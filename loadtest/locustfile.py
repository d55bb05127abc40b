"""Locust scenarios for the edge. Every request is named by how the edge served it (``x-edge-route``:
hit, miss, edge, stale, fallback, blocked...) or by the refusal (unauthorized, rate_limited), so
locust's statistics are per route.

Intended refusals are successes: 401 for the bad-token client, 429 for the client over its limit.
Anything else that is not a 2xx is a failure, as is a 401/429 where none was expected.

Configured by environment (set by `eaves loadtest`):
    EAVES_LOADTEST_KEY       API key of a tier with room for the whole test
    EAVES_LOADTEST_LOW_KEY   API key of a tier with a small limit (the over-the-limit client)
"""

from __future__ import annotations

import json
import os
import random

from locust import HttpUser, between, task
from locust.clients import ResponseContextManager

from edge.metrics import route_label
from loadtest.questions import POPULAR, SMALL_TALK, Zipf, chat_payload, new_question

CHAT = "/v1/chat/completions"
KEY = os.environ.get("EAVES_LOADTEST_KEY", "")
LOW_KEY = os.environ.get("EAVES_LOADTEST_LOW_KEY", "")


class EdgeUser(HttpUser):
    abstract = True
    wait_time = between(0.01, 0.1)
    key = KEY
    expected_refusal: int | None = None  # the one non-2xx status this scenario expects

    def on_start(self) -> None:
        self.rng = random.Random()
        self.popular = Zipf(POPULAR, rng=self.rng)

    def ask(self, prompt: str, *, stream: bool = False, key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key if key is not None else self.key}"}
        with self.client.post(CHAT, json=chat_payload(prompt, stream=stream), headers=headers, name="?",
                              catch_response=True, stream=stream) as response:
            self._judge(response, stream)

    def _judge(self, response: ResponseContextManager, stream: bool) -> None:
        status = response.status_code
        route = route_label(response.headers.get("x-edge-route"), status)
        response.request_meta["name"] = f"{route} (stream)" if stream else route
        if stream and status == 200:
            try:
                for _ in response.iter_content(chunk_size=None):
                    pass
            except Exception as exc:  # a broken stream is the failure to report, whatever its type
                response.failure(f"stream broke: {type(exc).__name__}")
                return
        if 200 <= status < 300 or status == self.expected_refusal:
            response.success()
        else:
            response.failure(f"unexpected {status}: {_error_code(response)}")


def _error_code(response: ResponseContextManager) -> str:
    try:
        return str(json.loads(response.content)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return response.text[:80] if response.text else ""


class RepeatVisitor(EdgeUser):
    """Asks the popular questions, Zipf-distributed: mostly hits once the cache is warm."""

    weight = 6

    @task
    def popular_question(self) -> None:
        self.ask(self.popular.draw())


class NewQuestionVisitor(EdgeUser):
    """Asks questions nobody asked before: misses, each one an origin call."""

    weight = 2

    @task
    def new_question(self) -> None:
        self.ask(new_question(self.rng))


class StreamingClient(EdgeUser):
    """Asks with ``stream: true`` and reads the whole body."""

    weight = 1

    @task
    def streamed(self) -> None:
        self.ask(self.popular.draw() if self.rng.random() < 0.5 else new_question(self.rng), stream=True)


class SmallTalker(EdgeUser):
    """Says hello and thanks: answered at the edge when the intent model is loaded, else cached."""

    weight = 1

    @task
    def small_talk(self) -> None:
        self.ask(self.rng.choice(SMALL_TALK))


class OverLimitClient(EdgeUser):
    """Shares one small-tier key and keeps asking: 429 with Retry-After is the expected answer."""

    weight = 1
    key = LOW_KEY
    expected_refusal = 429

    @task
    def hammer(self) -> None:
        self.ask(self.popular.draw())


class BadTokenClient(EdgeUser):
    """Sends keys that do not exist, and malformed JWTs: 401 is the expected answer."""

    weight = 1
    expected_refusal = 401

    @task
    def bad_key(self) -> None:
        self.ask(self.popular.draw(), key=self.rng.choice(["eav_not-a-real-key", "eyJhbGciOiJIUzI1NiJ9.e30.bad"]))
