"""Run the locust scenarios headless for a bounded time and summarise them per route and per label.

Against a given edge URL (with keys given), or against a stack this module starts on 127.0.0.1 with the
latency simulator behind it (naming in every answer the tenant and end user it was generated for) and two
tenants: one with room for the whole test, one whose tier allows a handful of requests a minute (the
over-the-limit client).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.metrics import CACHE_ROUTES, SAVED_ROUTES
from loadtest.checks import Checks

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOADTEST_TIER = "loadtest"
LOW_TIER = "low"
LOW_LIMIT = 5  # requests per minute for the over-the-limit client's tenant
INTENDED_REFUSALS = frozenset({"unauthorized", "rate_limited"})
LABELS = ("shareable", "personal", "time_sensitive", "fresh", "small_talk")  # what visitors ask (questions.py)


class LoadTestError(RuntimeError):
    """The load test could not run (locust failed to start, the stack did not come up)."""


@dataclass
class LoadTestConfig:
    users: int = 20
    spawn_rate: float = 10.0
    run_time_s: int = 30
    url: str | None = None
    key: str | None = None
    low_key: str | None = None
    out_dir: Path = Path("reports/loadtest")
    edge_workers: int = 1
    runtime: str = "cpython"  # the edge's: cpython (emulator) or pyodide (the Workers entry point)
    origin_workers: int = 1
    data_dir: Path | None = None
    sim_ttft_ms: int = 50


@dataclass
class RouteRow:
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float


@dataclass
class LoadTestResult:
    rows: list[RouteRow]
    total: RouteRow | None
    out_dir: Path
    failures: list[dict[str, str]] = field(default_factory=list)
    edge_metrics: dict[str, float] = field(default_factory=dict)
    locust_exit: int = 0
    checks: Checks = field(default_factory=Checks)

    @property
    def by_label(self) -> dict[str, dict[str, int]]:
        """Requests per label and route, from the request names ``<label>: <route>[ (stream)]``."""
        counts: dict[str, dict[str, int]] = {}
        for row in self.rows:
            label, _, route = row.name.removesuffix(" (stream)").rpartition(": ")
            routes = counts.setdefault(label, {})
            routes[route] = routes.get(route, 0) + row.requests
        return counts

    @property
    def by_route(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for routes in self.by_label.values():
            for route, n in routes.items():
                counts[route] = counts.get(route, 0) + n
        return counts

    @property
    def hit_ratio(self) -> float:
        return _hit_ratio(self.by_route)

    def label_hit_ratio(self, label: str) -> float | None:
        counts = self.by_label.get(label, {})
        return _hit_ratio(counts) if any(k in CACHE_ROUTES for k in counts) else None

    @property
    def served_across_users(self) -> int:
        """Answers naming an end user other than the asker: must be 0."""
        return self.checks.served_across_users

    def labels_report(self) -> dict[str, dict[str, Any]]:
        report = {}
        for label in LABELS:
            routes = self.by_label.get(label, {})
            if not routes:
                continue
            checks = self.checks.labels.get(label)
            report[label] = {"requests": sum(routes.values()), "routes": routes,
                             "hit_ratio": _round(self.label_hit_ratio(label)),
                             **({k: v for k, v in vars(checks).items()} if checks else {})}
        return report

    @property
    def origin_calls_saved(self) -> int:
        return sum(v for k, v in self.by_route.items() if k in SAVED_ROUTES)

    @property
    def unexpected_failures(self) -> int:
        return sum(row.failures for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"routes": [row.__dict__ for row in self.rows], "total": self.total.__dict__ if self.total else None,
                "hit_ratio": round(self.hit_ratio, 4), "origin_calls_saved": self.origin_calls_saved,
                "unexpected_failures": self.unexpected_failures, "failures": self.failures,
                "labels": self.labels_report(), "served_across_users": self.served_across_users,
                "edge_metrics": self.edge_metrics, "out_dir": str(self.out_dir)}


def _hit_ratio(counts: dict[str, int]) -> float:
    lookups = sum(v for k, v in counts.items() if k in CACHE_ROUTES)
    return (counts.get("hit", 0) + counts.get("stale", 0)) / lookups if lookups else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def read_stats(csv_prefix: Path) -> tuple[list[RouteRow], RouteRow | None]:
    rows, total = [], None
    with open(f"{csv_prefix}_stats.csv", newline="") as handle:
        for record in csv.DictReader(handle):
            row = RouteRow(record["Name"], int(record["Request Count"]), int(record["Failure Count"]),
                           _number(record["50%"]), _number(record["95%"]), _number(record["99%"]),
                           _number(record["Requests/s"]))
            if record["Name"] == "Aggregated":
                total = row
            else:
                rows.append(row)
    rows.sort(key=lambda r: -r.requests)
    return rows, total


def read_failures(csv_prefix: Path) -> list[dict[str, str]]:
    try:
        with open(f"{csv_prefix}_failures.csv", newline="") as handle:
            return [{"name": r["Name"], "error": r["Error"], "occurrences": r["Occurrences"]}
                    for r in csv.DictReader(handle)]
    except FileNotFoundError:
        return []


def run_locust(config: LoadTestConfig, url: str, key: str, low_key: str,
               operator_headers: dict[str, str] | None = None) -> LoadTestResult:
    """``operator_headers`` open the edge's /metrics (it answers only the operator's token); without them the
    edge's own count of routes is left out of the report."""
    from eaves.bench.run import scrape

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    before = scrape(url, operator_headers)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "-u", str(config.users), "-r", str(config.spawn_rate), "-t", f"{config.run_time_s}s",
               "--stop-timeout", "5", "--host", url, "--csv", str(prefix), "--html", str(out / "report.html"),
               "--loglevel", "WARNING"]
    checks_path = out / "checks.json"
    checks_path.unlink(missing_ok=True)
    env = {**os.environ, "EAVES_LOADTEST_KEY": key, "EAVES_LOADTEST_LOW_KEY": low_key,
           "EAVES_LOADTEST_CHECKS": str(checks_path)}
    project_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = project_root + os.pathsep + env.get("PYTHONPATH", "")
    with (out / "locust.log").open("wb") as log:
        try:
            proc = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=config.run_time_s + 90, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LoadTestError(f"locust did not stop within {config.run_time_s + 90}s; see {out / 'locust.log'}") \
                from exc
    if not Path(f"{prefix}_stats.csv").exists():
        raise LoadTestError(f"locust wrote no statistics (exit {proc.returncode}); see {out / 'locust.log'}:\n"
                            + (out / "locust.log").read_text(errors="replace")[-2000:])
    rows, total = read_stats(prefix)
    after = scrape(url, operator_headers)
    metrics = {route: after.get(route, 0.0) - before.get(route, 0.0) for route in after}
    return LoadTestResult(rows, total, out, read_failures(prefix), metrics, proc.returncode, Checks.read(checks_path))


def create_key(data_dir: Path, tenant: str, tier: str) -> str:
    from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
    from shared.kv_lmdb import LmdbKV, close_env
    from shared.local_stack import LocalStack

    stack = LocalStack(data_dir)
    stack.config()
    key = new_api_key()
    LmdbKV(stack.kv_path).put(KEY_PREFIX + api_key_hash(key), api_key_record(tenant, tier, tenant, time.time()))
    close_env(stack.kv_path)
    return key


@contextlib.contextmanager
def local_stack(config: LoadTestConfig) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """A fresh stack on 127.0.0.1 with the two load-test tenants; yields (edge URL, key, low key, the headers
    that open its /metrics)."""
    from eaves.stack import running_stack

    with contextlib.ExitStack() as stack:
        if config.data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eaves-loadtest-")))
        else:
            data_dir = config.data_dir
        key = create_key(data_dir, "loadtest", LOADTEST_TIER)
        low_key = create_key(data_dir, "loadtest-low", LOW_TIER)
        tiers = {LOADTEST_TIER: {"limit": 10**7, "window_s": 60}, LOW_TIER: {"limit": LOW_LIMIT, "window_s": 60},
                 "free": {"limit": 60, "window_s": 60}, "pro": {"limit": 600, "window_s": 60}}
        env = {"EAVES_TIERS": json.dumps(tiers), "EAVES_SIM_TTFT_MS": str(config.sim_ttft_ms),
               "EAVES_SIM_TOKENS_PER_S": "400", "EAVES_SIM_ECHO_TENANT": "1"}
        running = stack.enter_context(running_stack(data_dir, env=env, edge_workers=config.edge_workers,
                                                    origin_workers=config.origin_workers,
                                                    edge_args=["--runtime", config.runtime]))
        assert running.edge is not None
        yield running.edge.url, key, low_key, running.operator_headers
        with contextlib.suppress(OSError):
            (config.out_dir / "logs").mkdir(parents=True, exist_ok=True)
            for server in running.servers:
                (config.out_dir / "logs" / server.log_path.name).write_bytes(server.log_path.read_bytes())


def run(config: LoadTestConfig) -> LoadTestResult:
    if config.url:
        if not config.key:
            raise LoadTestError("--url needs --key (and --low-key for the over-the-limit client)")
        return run_locust(config, config.url.rstrip("/"), config.key, config.low_key or config.key)
    with local_stack(config) as (url, key, low_key, operator_headers):
        return run_locust(config, url, key, low_key, operator_headers)


def format_table(result: LoadTestResult) -> str:
    lines = [f"| {'label: route':<32} | {'requests':>8} | {'failures':>8} | {'p50 ms':>7} | {'p95 ms':>7} | "
             f"{'p99 ms':>7} | {'req/s':>7} |",
             f"|{'-' * 34}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|"]
    rows = list(result.rows) + ([result.total] if result.total else [])
    for row in rows:
        name = "all" if row.name == "Aggregated" else row.name
        lines.append(f"| {name:<32} | {row.requests:>8} | {row.failures:>8} | {row.p50_ms:>7.0f} | "
                     f"{row.p95_ms:>7.0f} | {row.p99_ms:>7.0f} | {row.rps:>7.1f} |")
    lines.append(f"hit ratio (hit+stale)/(hit+stale+miss): {result.hit_ratio:.1%}; origin calls saved (hit, stale, "
                 f"edge, blocked): {result.origin_calls_saved}; intended refusals (401, 429) count as successes")
    if result.edge_metrics:
        routes = ", ".join(f"{k}={v:,.0f}" for k, v in sorted(result.edge_metrics.items()) if v)
        lines.append(f"edge /metrics over the run: {routes}")
    lines.append("")
    lines.append(f"| {'label':<15} | {'requests':>8} | {'hit ratio':>9} | {'served across users':>19} | "
                 f"{'answers naming user':>19} | {'max age s':>9} | {'max lifetime s':>20} |")
    lines.append(f"|{'-' * 17}|{'-' * 10}|{'-' * 11}|{'-' * 21}|{'-' * 21}|{'-' * 11}|{'-' * 22}|")
    for label, figures in result.labels_report().items():
        ratio = "-" if figures["hit_ratio"] is None else f"{figures['hit_ratio']:.1%}"
        answered = figures.get("answered", 0)
        named = f"{figures.get('named', 0) / answered:.0%}" if answered else "-"
        lifetime = str(figures.get("max_lifetime_s", 0))
        if figures.get("kv_without_lifetime"):
            lifetime += f" ({figures['kv_without_lifetime']} undeclared)"
        lines.append(f"| {label:<15} | {figures['requests']:>8} | {ratio:>9} | {figures.get('crossed', 0):>19} | "
                     f"{named:>19} | {figures.get('max_age_s', 0):>9} | {lifetime:>20} |")
    lines.append(f"answers served across users: {result.served_across_users} (must be 0; detected by the end user the "
                 "simulator names in each answer)")
    for figures in result.labels_report().values():
        for example in figures.get("crossed_examples", []):
            lines.append(f"  {example}")
    if result.checks.labels and not any(c.named for c in result.checks.labels.values()):
        lines.append("  (no answer named an end user: the origin was not told who asked, so crossings could not be "
                     "seen; a stack whose edge forwards the end user and whose simulator echoes it can)")
    blocked = {label: routes["blocked"] for label, routes in result.by_label.items() if routes.get("blocked")}
    if blocked:
        lines.append("benign questions blocked by the policy: " + ", ".join(f"{k} {v}" for k, v in blocked.items()))
    lines.append(f"unexpected failures: {result.unexpected_failures}")
    for failure in result.failures[:10]:
        lines.append(f"  {failure['occurrences']}x {failure['name']}: {failure['error']}")
    lines.append(f"locust CSV and HTML report: {result.out_dir}/locust_stats.csv, {result.out_dir}/report.html")
    return "\n".join(lines)
