"""Locust scenarios for the edge. Every request is named by what was asked and how the edge served it,
``<label>: <route>`` (label: shareable, personal, time_sensitive, fresh, small_talk, or the refusal scenario;
route: ``x-edge-route`` hit, miss, edge, stale, ..., or the refusal, unauthorized or rate_limited), so locust's
statistics are per label and per route.

Each simulated visitor is one end user of the tenant: a website's backend calling with the site's API key and
the visitor in the OpenAI request's ``user`` field. Every answer is checked (``loadtest/checks.py``): one that
names another end user, or a personal question's answer from the KV that this visitor never asked for, was
served across users.

Intended refusals are successes: 401 for the bad-token client, 429 for the client over its limit. A question
the policy blocks (403, ``x-edge-route: blocked``) is counted as ``<label>: blocked``, not as a failure: every
question here is benign, so the count is the model's false blocks, a figure to read rather than a crash.
Anything else that is not a 2xx is a failure, as is a 401/429 where none was expected.

Configured by environment (set by `eaves loadtest`):
    EAVES_LOADTEST_KEY       API key of a tier with room for the whole test
    EAVES_LOADTEST_LOW_KEY   API key of a tier with a small limit (the over-the-limit client)
    EAVES_LOADTEST_CHECKS    where to write the per-label checks as JSON when the test stops
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task
from locust.clients import ResponseContextManager

from loadtest.answers import content_of, served_from_parts
from loadtest.checks import Checks
from loadtest.questions import PERSONAL, SHAREABLE, SMALL_TALK_BANK, TIME_SENSITIVE, Zipf, chat_payload, fresh_question

CHAT = "/v1/chat/completions"
KEY = os.environ.get("EAVES_LOADTEST_KEY", "")
LOW_KEY = os.environ.get("EAVES_LOADTEST_LOW_KEY", "")
CHECKS = Checks()


@events.test_stop.add_listener
def _write_checks(**_: Any) -> None:
    path = os.environ.get("EAVES_LOADTEST_CHECKS")
    if path:
        CHECKS.write(Path(path))


class EdgeUser(HttpUser):
    abstract = True
    wait_time = between(0.01, 0.1)
    key = KEY
    expected_refusal: int | None = None  # the one non-2xx status this scenario expects

    def on_start(self) -> None:
        self.rng = random.Random()
        self.end_user = f"visitor-{uuid.uuid4().hex[:12]}"
        self.asked: set[str] = set()  # what this visitor asked before: a personal hit it never asked for crossed
        self.shareable = Zipf(SHAREABLE, rng=self.rng)

    def ask(self, label: str, prompt: str, *, stream: bool = False, key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key if key is not None else self.key}"}
        with self.client.post(CHAT, json=chat_payload(prompt, stream=stream, user=self.end_user), headers=headers,
                              name="?", catch_response=True, stream=stream) as response:
            self._judge(response, label, prompt, stream)

    def _judge(self, response: ResponseContextManager, label: str, prompt: str, stream: bool) -> None:
        status = response.status_code
        body = b""
        if stream and status == 200:
            try:
                body = b"".join(response.iter_content(chunk_size=None))
            except Exception as exc:  # a broken stream is the failure to report, whatever its type
                response.failure(f"stream broke: {type(exc).__name__}")
                return
        elif status == 200:
            body = response.content
        served = served_from_parts(status, response.headers, content_of(body, stream) if body else None)
        response.request_meta["name"] = f"{label}: {served.route}" + (" (stream)" if stream else "")
        CHECKS.record(label, served, self.end_user, prompt, first_ask=prompt not in self.asked)
        if status == 200:  # asked and answered: a later answer from the KV may be this visitor's own
            self.asked.add(prompt)
        if 200 <= status < 300 or status == self.expected_refusal or served.route == "blocked":
            response.success()
        else:
            response.failure(f"unexpected {status}: {_error_code(response)}")


def _error_code(response: ResponseContextManager) -> str:
    try:
        return str(json.loads(response.content)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return response.text[:80] if response.text else ""


class ShareableVisitor(EdgeUser):
    """Asks the popular shareable questions (FAQ, how-to, general knowledge, recipes, writing), Zipf-distributed."""

    weight = 5

    @task
    def shareable(self) -> None:
        self.ask("shareable", self.shareable.draw())


class PersonalVisitor(EdgeUser):
    """Asks about their own account, orders, calendar, devices: the same questions many visitors ask, each
    about themselves. An answer generated for another visitor is a crossing."""

    weight = 3

    def on_start(self) -> None:
        super().on_start()
        self.personal = Zipf(PERSONAL, rng=self.rng)

    @task
    def personal(self) -> None:
        self.ask("personal", self.personal.draw())


class TimeSensitiveVisitor(EdgeUser):
    """Asks about now: weather, prices, scores, status, queues."""

    weight = 2

    def on_start(self) -> None:
        super().on_start()
        self.now = Zipf(TIME_SENSITIVE, rng=self.rng)

    @task
    def time_sensitive(self) -> None:
        self.ask("time_sensitive", self.now.draw())


class FreshVisitor(EdgeUser):
    """Asks one-off questions nobody asked before: misses, each one an origin call."""

    weight = 2

    @task
    def fresh(self) -> None:
        self.ask("fresh", fresh_question(self.rng))


class StreamingClient(EdgeUser):
    """Asks with ``stream: true`` and reads the whole body."""

    weight = 1

    @task
    def streamed(self) -> None:
        if self.rng.random() < 0.5:
            self.ask("shareable", self.shareable.draw(), stream=True)
        else:
            self.ask("fresh", fresh_question(self.rng), stream=True)


class SmallTalker(EdgeUser):
    """Says hello and thanks: answered at the edge when the intent model is loaded, else cached."""

    weight = 1

    @task
    def small_talk(self) -> None:
        self.ask("small_talk", self.rng.choice(SMALL_TALK_BANK))


class OverLimitClient(EdgeUser):
    """Shares one small-tier key and keeps asking: 429 with Retry-After is the expected answer."""

    weight = 1
    key = LOW_KEY
    expected_refusal = 429

    @task
    def hammer(self) -> None:
        self.ask("over_limit", self.shareable.draw())


class BadTokenClient(EdgeUser):
    """Sends keys that do not exist, and malformed JWTs: 401 is the expected answer."""

    weight = 1
    expected_refusal = 401

    @task
    def bad_key(self) -> None:
        self.ask("bad_token", self.shareable.draw(),
                 key=self.rng.choice(["eav_not-a-real-key", "eyJhbGciOiJIUzI1NiJ9.e30.bad"]))
