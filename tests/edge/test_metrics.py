"""Edge metrics: counted once per request by route and status, merged across processes."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from edge import metrics
from edge.http import EdgeRequest, EdgeResponse
from edge.logs import RequestLog, fan_out
from edge.metrics import EdgeMetrics, hit_ratio, merge, route_label
from edge.timing import Timing
from shared.jsonlog import JsonLineWriter
from tests.world import make_world


class TestRouteLabel:
    def test_route_header_wins(self) -> None:
        """A request the edge served is labelled with its x-edge-route value, whatever it is."""
        assert route_label("hit", 200) == "hit"
        assert route_label("a-route-added-later", 200) == "a-route-added-later"

    def test_refusals_are_named(self) -> None:
        """Refusals that carry no route header get a name from their status."""
        assert route_label(None, 401) == "unauthorized"
        assert route_label(None, 429) == "rate_limited"
        assert route_label(None, 502) == "error"
        assert route_label(None, 400) == "rejected"


class TestObserver:
    async def test_counts_each_request_once_by_route(self) -> None:
        """A miss, a hit and a bad key are counted once each, under their routes, with durations and segments."""
        world = await make_world()
        counts = EdgeMetrics()
        world.edge.observer = counts.observe
        await world.chat("How do I reset my password?")
        await world.chat("How do I reset my password?")
        await world.chat("hello", key="eav_unknown")
        assert counts.requests == {("miss", "200"): 1, ("hit", "200"): 1, ("unauthorized", "401"): 1}
        assert sum(counts.durations["hit"][:-1]) == 1
        assert counts.segments["kv"][0] == 2 and counts.segments["origin"][0] == 1

    async def test_log_line_has_request_id_and_no_secrets(self) -> None:
        """The JSON log line names request id, route and tenant, and carries neither the key nor the prompt."""
        world = await make_world()
        stream = io.StringIO()
        world.edge.observer = RequestLog(JsonLineWriter("edge", stream)).observe
        response = await world.chat("my secret question", headers={"x-request-id": "req-123"})
        line = json.loads(stream.getvalue())
        assert line["request_id"] == "req-123" == response.header("x-request-id")
        assert line["route"] == "miss" and line["tenant"] == "acme" and line["status"] == 200
        assert "secret" not in stream.getvalue() and world.keys["acme"] not in stream.getvalue()

    async def test_fan_out_calls_every_observer(self) -> None:
        """Metrics and logs both see a request when fanned out."""
        world = await make_world()
        first, second = EdgeMetrics(), EdgeMetrics()
        world.edge.observer = fan_out(first.observe, None, second.observe)
        await world.chat()
        assert first.requests == second.requests == {("miss", "200"): 1}


class TestFromProduction:
    async def test_fallbacks_counted_by_reason_from_responses(self) -> None:
        """A failing origin's fallback answers are counted by reason by the observer alone."""
        world = await make_world(breaker_failures=2)
        counts = EdgeMetrics()
        world.edge.observer = counts.observe
        world.simulator.fail_rate = 1.0
        for i in range(3):
            response = await world.chat(f"question {i}")
            assert response.header("x-edge-route") == "fallback"
        assert counts.fallbacks == {"origin_error": 2, "circuit_open": 1}
        assert counts.requests[("fallback", "502")] == 2

    async def test_breaker_state_read_at_snapshot(self) -> None:
        """A watched breaker's state is in every snapshot, including a change that happened with time alone."""
        world = await make_world(breaker_failures=1, breaker_cooldown_s=30.0)
        counts = EdgeMetrics()
        counts.watch_breaker("origin", lambda: world.edge.breaker.state)
        assert counts.snapshot()["breakers"] == {"origin": "closed"}
        world.simulator.fail_rate = 1.0
        await world.chat()
        assert counts.snapshot()["breakers"] == {"origin": "open"}
        generation = counts.generation
        world.clock.advance(31)
        assert counts.snapshot()["breakers"] == {"origin": "half_open"} and counts.generation > generation


class TestBatchedCounting:
    def test_counts_are_complete_whenever_read(self) -> None:
        """Requests are counted in batches, yet every read (attribute, snapshot, exporter poll) sees all of them."""
        counts = EdgeMetrics()
        ticks = iter(range(10_000))
        for i in range(300):  # more than one batch, and a partial one
            timing = Timing(lambda: next(ticks) / 10_000)
            timing.mark("auth")
            counts.observe(EdgeRequest("POST", "/v1/chat/completions", {}, b""),
                           EdgeResponse(200 if i % 3 else 429, b"{}", [("x-edge-route", "hit")] if i % 3 else []),
                           timing, f"r{i}")
        assert counts.requests == {("hit", "200"): 200, ("rate_limited", "429"): 100}
        assert sum(counts.durations["hit"][:-2]) == 200 and counts.segments["auth"][0] == 300
        generation = counts.generation
        counts.observe(EdgeRequest("GET", "/x", {}, b""), EdgeResponse(404), Timing(lambda: 0.0), "last")
        assert counts.snapshot()["requests"][-1] == ["not_found", "404", 1] and counts.generation > generation


class TestApiForOthers:
    def test_fallback_and_breaker_state(self) -> None:
        """The module-level API feeds the process's metrics."""
        before = metrics.METRICS.fallbacks.get("origin_timeout", 0)
        metrics.fallback("origin_timeout")
        metrics.breaker_state("origin", "open")
        assert metrics.METRICS.fallbacks["origin_timeout"] == before + 1
        assert metrics.METRICS.breakers["origin"] == "open"


class TestMerge:
    def test_sums_counters_and_histograms_and_counts_breaker_states(self) -> None:
        """Two processes' snapshots add up; breaker states become per-state process counts."""
        a, b = EdgeMetrics(), EdgeMetrics()
        a.requests = {("hit", "200"): 3, ("miss", "200"): 1}
        b.requests = {("hit", "200"): 2, ("edge", "200"): 4}
        a.durations = {"hit": [1.0, 2.0, 0.5]}
        b.durations = {"hit": [0.0, 1.0, 0.25]}
        a.breaker_state("origin", "open")
        b.breaker_state("origin", "closed")
        merged = merge([json.loads(json.dumps(a.snapshot())), json.loads(json.dumps(b.snapshot()))])
        assert merged["requests"][("hit", "200")] == 5
        assert merged["durations"]["hit"] == [1.0, 3.0, 0.75]
        assert merged["breakers"] == {("origin", "open"): 1, ("origin", "closed"): 1}
        assert hit_ratio(merged["requests"]) == 5 / 6


async def test_the_log_line_and_the_histogram_report_one_duration_per_request() -> None:
    """Both observers read the request's duration from the same stop, so a line's duration_ms is the sum the
    histogram got for it, even on a clock that moves at every read."""
    world = await make_world()
    await world.add_key("acme", "acme")
    ticks = iter(range(10_000))
    world.edge.clock.monotonic = lambda: next(ticks) / 1000  # type: ignore[method-assign]
    stream, counted = io.StringIO(), EdgeMetrics()
    world.edge.observer = fan_out(counted.observe, RequestLog(JsonLineWriter("edge", stream)).observe)
    response = await world.chat(key="acme")
    line = json.loads(stream.getvalue())
    assert line["route"] == response.header("x-edge-route") == "miss"
    assert line["duration_ms"] == counted.durations[line["route"]][-1] * 1000


async def test_log_line_escapes_what_clients_choose() -> None:
    """Tenant ids cannot hold quotes or backslashes (validated where they are created), and a request id
    with them is not taken at all (replaced by a generated one before it is logged): one valid JSON line."""
    world = await make_world()
    await world.add_key("odd", "odd.tenant")
    stream = io.StringIO()
    world.edge.observer = RequestLog(JsonLineWriter("edge", stream)).observe
    await world.chat(key="odd", headers={"x-request-id": 'id"\\'})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["tenant"] == "odd.tenant" and len(line["request_id"]) == 16


@settings(max_examples=200, deadline=None)
@given(request_id=st.text(max_size=40), tenant=st.text(max_size=40), method=st.text(min_size=1, max_size=10),
       path=st.text(max_size=60), route=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
       marks=st.lists(st.sampled_from(["auth", "ratelimit", "parse", "kv", "classify", "origin"]), max_size=6),
       status=st.sampled_from([200, 202, 400, 401, 404, 429, 502]), intent=st.text(max_size=20))
def test_any_request_gives_one_json_line_with_its_values(request_id: str, tenant: str, method: str, path: str,
                                                         route: str | None, marks: list[str], status: int,
                                                         intent: str) -> None:
    """Whatever a client or tenant chose, the log line is one line of JSON that gives back exactly those values,
    and its segment times are the Server-Timing header's."""
    stream = io.StringIO()
    log = RequestLog(JsonLineWriter("edge", stream))
    ticks = iter(range(100))
    timing = Timing(lambda: next(ticks) / 1000)
    for name in marks:
        timing.mark(name)
    timing.tenant = tenant
    headers = ([("x-edge-route", route)] if route else []) + ([("x-edge-intent", intent)] if intent else [])
    log.observe(EdgeRequest(method, path, {}, b""), EdgeResponse(status, b"{}", headers), timing, request_id)
    lines = stream.getvalue().split("\n")  # JSON lines end at "\n" only (U+0085 or U+2028 may stay raw inside)
    assert len(lines) == 2 and lines[1] == ""
    line = json.loads(lines[0])
    assert (line["request_id"], line["tenant"], line["method"], line["path"]) == (request_id, tenant, method, path)
    assert line["route"] == (route or route_label(None, status))
    assert (line["status"], line["intent"]) == (status, intent)
    assert line["timing_ms"] == {name: 1.0 for name in marks}
