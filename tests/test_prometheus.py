"""The dashboard and alert rules against a real Prometheus scraping a real engine.

promtool checks the scrape configuration and the rules and runs the rules'
unit tests (metrics/prometheus/alerts_test.yml). Then an engine is started
on free ports, with a Prometheus (the Debian package) scraping it every
second; SIPp callers walk the IVR, a SIPp agent answers queued callers,
and one more queued caller gives up once the agent has logged out; then
every PromQL expression of the Grafana dashboard and of the alert rules
is evaluated through Prometheus' HTTP API. Each must return at least one
sample, and every sample must be a finite number.

Dashboard variables are given concrete values (``$queue`` the test's queue,
``$__rate_interval`` two minutes, ``$__range`` ten minutes). Alert rules
are written as ``value <comparison> threshold`` (joined by ``and`` for a
minimum volume), so a healthy run filters every sample out: they are
evaluated with each comparison turned into its ``bool`` form, which keeps
one 0-or-1 sample per series and so still proves each series exists and
the arithmetic is finite. The counts Prometheus holds must agree with the
call records the engine stored for the same calls.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, SIPP_DIR, RunningEngine, free_port, require_tool, write_config
from tests.interop_helpers import sipp_caller_args
from tests.test_acd_sipp import Sipp, login_all, post, scenario_copy
from tests.test_calls_sipp import call_records

pytestmark = pytest.mark.interop

METRICS = ROOT / "metrics"
DASHBOARD = METRICS / "grafana" / "acd-dashboard.json"
PROMETHEUS_DIR = METRICS / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
FLOW_DIR = ROOT / "tests" / "data" / "ivr"
CAPTURES = Path("/usr/share/sip-tester")
QUEUE = "sales"
QUEUE_SETTINGS = ", ".join(
    [
        "service_level: 20",
        "max_wait: 120",
        "join_empty: true",  # wait with nobody logged in: the abandoned call
        "ring_timeout: 5",
        "wrap_up: 0",
        "retry_delay: 0",
        "reject_delay: 0",
        "announce_every: 0",
    ]
)
AGENT = "1001"

DASHBOARD_VALUES = {
    "$__rate_interval": "2m",
    "$__interval": "15s",
    "$__range": "10m",
    "$queue": QUEUE,
}
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


# -- the rule and dashboard files -------------------------------------------------------------


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    tool = require_tool("promtool")
    result = subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert f"SUCCESS: {len(alert_expressions())} rules found" in promtool(
        "check", "rules", "alerts.yml"
    )


def test_alert_rules_fire_when_they_should_and_only_then() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def test_dashboard_is_importable_and_covers_every_area() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard_panels())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Traffic", "Queues", "Agents", "Quality", "SIP"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["queue"]["definition"] == "label_values(acd_calls_offered_total, queue)"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    text = DASHBOARD.read_text()
    for name in ("acd_bhca", "acd_service_level", "acd_agents", "rtp_jitter_seconds"):
        assert name in text


def with_bool(expr: str) -> str:
    """``expr`` with every comparison outside label matchers made a ``bool`` comparison."""
    out: list[str] = []
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote is not None:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if depth == 0:
            op = next((op for op in _COMPARISONS if expr.startswith(op, i)), None)
            if op is not None:
                out.append(f"{op} bool")
                i += len(op)
                continue
        out.append(c)
        i += 1
    return "".join(out)


def test_with_bool_leaves_label_matchers_alone() -> None:
    assert (
        with_bool('rate(x{a!="b", c=~"d"}[5m]) > 0.1 and on (q) y == 0')
        == 'rate(x{a!="b", c=~"d"}[5m]) > bool 0.1 and on (q) y == bool 0'
    )


# -- a real Prometheus ------------------------------------------------------------------------


class Prometheus:
    """A Prometheus server in a temporary directory, scraping one engine every second."""

    def __init__(self, tmp_path: Path, target_port: int) -> None:
        binary = require_tool("prometheus")
        self.port = free_port()
        home = tmp_path / "prometheus"
        home.mkdir()
        shutil.copy(ALERTS, home / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {
                    "job_name": "acd",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = home / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[float]:
        """Every sample value of an instant query (one for a scalar)."""
        try:
            data = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                raise  # starting up (the TSDB not open yet): wait_for tries again
            raise AssertionError(f"{expr}\n{exc.read().decode(errors='replace')}") from None
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        return [float(sample["value"][1]) for sample in data["result"]]

    def wait_for(self, predicate: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()}")
            try:
                if predicate():
                    return
            except OSError:
                pass  # not listening yet, or not ready (503)
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.targets()}\n{self.log()}")

    def targets(self) -> str:
        """The scrape targets' health and last error, for failure messages."""
        try:
            targets = self.get("/api/v1/targets")["activeTargets"]
        except OSError as exc:
            return f"(targets unavailable: {exc})"
        return "; ".join(f"{t['scrapeUrl']} {t['health']} {t['lastError']!r}" for t in targets)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


# -- callers -------------------------------------------------------------------------------------


def engine_config(tmp_path: Path) -> Path:
    ivr_dir = tmp_path / "ivr"
    shutil.copytree(FLOW_DIR, ivr_dir)
    low = 30000 + (free_port() % 1000) * 20
    extra = "\n".join(
        [
            "trunks:",
            "  - {name: carrier, addresses: [127.0.0.1]}",
            "queues:",
            f"  {QUEUE}: {{{QUEUE_SETTINGS}}}",
            "  support: {service_level: 30}",
            "routes:",
            '  - {match: "100", ivr: main, record: false}',
            f'  - {{match: "200", queue: {QUEUE}, record: true}}',
            f"ivr_dir: {ivr_dir}",
            f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
            f"media: {{rtp_ports: [{low}, {low + 19}]}}",
        ]
    )
    return write_config(tmp_path / "acd.yaml", agents=2, extra=extra)


def run_callers(engine: RunningEngine, tmp_path: Path, calls: list[tuple[str, str]]) -> None:
    """One SIPp caller per (number dialled, key pressed), all at once; each must succeed."""
    sipp = require_tool("sipp")
    template = (SIPP_DIR / "ivr_caller.xml").read_text()
    running = []
    for n, (service, key) in enumerate(calls):
        workdir = tmp_path / f"caller{n}"
        workdir.mkdir()
        scenario = workdir / "caller.xml"
        capture = CAPTURES / f"dtmf_2833_{key}.pcap"
        scenario.write_text(template.replace(str(CAPTURES / "dtmf_2833_1.pcap"), str(capture)))
        args = [sipp, f"127.0.0.1:{engine.sip_port}", *sipp_caller_args(scenario, service=service)]
        running.append(
            (workdir, subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        )  # fmt: skip
    failures = []
    for workdir, process in running:
        try:
            _, stderr = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate(timeout=10)
        if process.returncode != 0:
            errors = "\n".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
            failures.append(f"{workdir.name}: {process.returncode} {stderr!r}\n{errors}")
    assert not failures, "\n".join(failures) + "\n" + engine.log()


# -- the proof ------------------------------------------------------------------------------------


def test_every_dashboard_and_alert_query_returns_data(tmp_path: Path, engine_factory: Any) -> None:
    engine: RunningEngine = engine_factory(engine_config(tmp_path))
    prometheus = Prometheus(tmp_path, engine.http_port)
    try:
        prometheus.wait_for(
            lambda: prometheus.query('up{job="acd"}') == [1.0], "the first scrape of the engine"
        )
        # An agent (SIPp) answers two queued callers and hangs up after a
        # second, while two callers walk the IVR (keys 1 and 2). Then the
        # agent logs out, and a third queued caller waits with nobody to
        # answer and gives up: an abandoned call.
        sipp = Sipp(engine, tmp_path)
        try:
            sipp.agent(AGENT, scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1000))
            login_all(engine, [AGENT])
            answered = sipp.callers("200", 2)
            run_callers(engine, tmp_path, [("100", "1"), ("100", "2")])
            assert answered.wait(90) == 0, answered.describe()
            post(engine, f"/api/v1/agents/{AGENT}/logout")
            gives_up = sipp.callers(
                "200", 1, scenario=scenario_copy(tmp_path, "queue_caller.xml", t20000=3000)
            )
            assert gives_up.wait(90) == 0, gives_up.describe()
        finally:
            sipp.stop()
        calls = 5
        records: list[dict[str, Any]] = []

        def stored() -> bool:
            records[:] = call_records(engine)
            return len(records) == calls

        engine.wait_for(stored, timeout=30, what="every call record")
        prometheus.wait_for(
            lambda: prometheus.query("sum(acd_calls_ended_total)") == [float(calls)],
            "Prometheus to scrape the last call's end",
        )

        empty, not_finite = [], []
        expressions = [
            *(_substitute(e) for e in dashboard_expressions()),
            *(with_bool(e) for e in alert_expressions().values()),
        ]
        for expr in expressions:
            values = prometheus.query(expr)
            if not values:
                empty.append(expr)
            elif not all(math.isfinite(v) for v in values):
                not_finite.append(f"{expr} = {values}")
        assert not empty, "queries with no result:\n" + "\n".join(empty)
        assert not not_finite, "queries with NaN or infinite results:\n" + "\n".join(not_finite)
        assert len(expressions) >= 50

        # The alert rules themselves were loaded and evaluate without error.
        groups = prometheus.get("/api/v1/rules")["groups"]
        health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        assert set(health) == set(alert_expressions())
        prometheus.wait_for(
            lambda: all(
                r["health"] == "ok"
                for g in prometheus.get("/api/v1/rules")["groups"]
                for r in g["rules"]
            ),
            "every rule to be evaluated",
        )

        _assert_counts_match_records(prometheus, records)
    finally:
        prometheus.stop()


def _substitute(expr: str) -> str:
    for variable, concrete in DASHBOARD_VALUES.items():
        expr = expr.replace(variable, concrete)
    assert "$" not in expr, f"unknown dashboard variable in {expr}"
    return expr


def _assert_counts_match_records(prometheus: Prometheus, records: list[dict[str, Any]]) -> None:
    def one(expr: str) -> float:
        values = prometheus.query(expr)
        assert len(values) == 1, f"{expr}: {values}"
        return values[0]

    assert one("acd_call_attempts_total") == len(records)
    assert one("acd_bhca") == len(records)
    by_disposition = Counter(r["disposition"] for r in records)
    for disposition in ("answered", "abandoned", "timeout", "failed"):
        assert (
            one(f'acd_calls_ended_total{{disposition="{disposition}"}}')
            == by_disposition[disposition]
        ), disposition
    queued = [r for r in records if r["queue"] == QUEUE]
    assert len(queued) == 3
    assert one(f'acd_calls_offered_total{{queue="{QUEUE}"}}') == len(queued)
    for disposition in ("answered", "abandoned"):
        expected = sum(1 for r in queued if r["disposition"] == disposition)
        assert one(f'acd_calls_{disposition}_total{{queue="{QUEUE}"}}') == expected, disposition
    assert one(f'acd_calls_answered_total{{queue="{QUEUE}"}}') == 2
    assert one(f'acd_calls_abandoned_total{{queue="{QUEUE}"}}') == 1
    assert one(f'acd_answer_time_seconds_count{{queue="{QUEUE}"}}') == 2
    assert one(f'acd_abandon_time_seconds_count{{queue="{QUEUE}"}}') == 1
    assert one(f'acd_service_level{{queue="{QUEUE}"}}') == 1.0  # both answered within 20 s
    assert one(f'acd_connect_rate{{queue="{QUEUE}"}}') == 2 / 3
    assert one('acd_agents{state="logged_out"}') == 2
    assert one("acd_ivr_response_seconds_count") >= 2  # a key press in each IVR call
    assert one("acd_setup_time_seconds_count") == len(records)
    assert one('sum(rtp_packets_total{direction="in"})') > 0
    assert one("rtp_streams_active") == 0
    assert one("recordings_active") == 0
