"""The container image, really built and run: Podman, a Debian base made here, SIPp through it.

These machines cannot pull images, so the base is Debian bookworm built by
mmdebstrap from Debian's packages (with Python, a compiler and espeak-ng)
and imported; the project's Dockerfile is built on it (``BASE``), with the
host's CA bundle mounted for the build's pip (this sandbox reaches PyPI
through an intercepting proxy; the image does not keep it). Podman runs
with runc and cgroupfs and ulimits within the machine's hard limits, as
Debian's podman needs here.

The container is reached only through ports published on 127.0.0.1: SIP,
HTTP and an RTP range (``ACD_RTP_PORTS``). A SIPp caller keys 1 into the demo
IVR (its RFC 4733 packets go to the published RTP range), which routes it to
the sales node; the CDR read over the published HTTP port proves the path.
The image runs as a non-root user, has espeak-ng and the C media path, and
a HEALTHCHECK that passes; ``podman stop`` drains and exits 0.

The compose stack (deploy/compose.yaml) is brought up with podman-compose on
the same images, with Debian-built stand-ins for the PostgreSQL and
Prometheus images it names (they cannot be pulled here either); Grafana is
left out, since no Grafana can run here (tests/test_compose_files.py checks
its provisioning). A call through the stack's published ports lands its CDR
in the stack's PostgreSQL, and Prometheus scrapes the engine with the
shipped rules loaded.

Where containers cannot run at all (no podman, or ``podman info`` fails),
the test is skipped with podman's own reason, outside CI; in CI it fails.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, SIPP_DIR, free_port, require_tool
from .interop_helpers import sipp_caller_args

pytestmark = pytest.mark.interop

# Tagged by process, so that two test runs on one machine do not remove each other's images.
TAG = f"run{os.getpid()}"
IMAGE = f"localhost/acd-test:{TAG}"
BASE = f"localhost/acd-test-base:{TAG}"
POSTGRES_STANDIN = f"localhost/acd-test-postgres:{TAG}"
PROMETHEUS_STANDIN = f"localhost/acd-test-prometheus:{TAG}"
# The engine's needs, and for the compose stack: PostgreSQL and Prometheus (the stand-ins
# below), SIPp (an agent's phone on the stack's network).
BASE_PACKAGES = (
    "python3,python3-venv,python3-dev,gcc,libc6-dev,espeak-ng,ca-certificates,"
    "postgresql,prometheus,sip-tester"
)
AGENT, AGENT_PASSWORD = "1001", "Sunflower-Bay-71"  # config/example.yaml's first agent
COMPOSE = ROOT / "deploy" / "compose.yaml"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
RTP_PAIRS = 20


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment podman runs with here; the image built, removed at the end."""
    for tool in ("podman", "mmdebstrap"):
        require_tool(tool)
    work = tmp_path_factory.mktemp("container")
    nofile = min(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    conf = work / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    info = _run(["podman", "info"], env, 60)
    if info.returncode != 0:
        reason = f"containers cannot run here: podman info: {info.stderr.strip()[-300:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = work / "base.tar"
    made = _run(
        ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(base)],
        env,
        900,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    imported = _run(["podman", "import", str(base), BASE], env, 300)
    assert imported.returncode == 0, imported.stderr[-3000:]
    base.unlink()
    build = ["podman", "build", "--format", "docker", "--build-arg", f"BASE={BASE}", "-t", IMAGE]
    if HOST_CA.is_file():
        build += ["-v", f"{HOST_CA}:{HOST_CA}:ro"]
    built = _run([*build, str(ROOT)], env, 900)
    assert built.returncode == 0, (built.stdout + built.stderr)[-5000:]
    try:
        yield env
    finally:
        _run(["podman", "rmi", "-f", *STANDINS, IMAGE, BASE], env, 120)


def _rtp_range() -> int:
    """The first of RTP_PAIRS port pairs, below the ephemeral range (so that nothing else
    is likely to hold one when podman publishes them), picked from a free port."""
    return 20000 + (free_port() % 300) * 2 * RTP_PAIRS


def _config(path: Path) -> Path:
    """example.yaml for a container reached on loopback: SIP and SDP say 127.0.0.1, and the
    carrier is any source (the published ports' NAT hides the host's address)."""
    text = (ROOT / "config" / "example.yaml").read_text()
    nat = "  # advertised_address: 203.0.113.10\n"
    text = text.replace(nat, "  advertised_address: 127.0.0.1\n")
    text = re.sub(r"addresses: \[127\.0\.0\.1\]", "addresses: [0.0.0.0/0]", text)
    # No recording notice: the caller's key comes during the welcome, which it may cut short.
    main = "    ivr: main                # the flow in config/ivr/main.yaml\n"
    text = text.replace(main, main + "    record: false\n")
    assert "advertised_address: 127.0.0.1" in text and "0.0.0.0/0" in text
    assert main + "    record: false\n" in text, "route 100 changed shape in example.yaml"
    path.write_text(text)
    return path


def _http_json(port: int, path: str, token: str | None = None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _sign_in(port: int) -> str:
    body = json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/auth/token",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["token"])


def _until(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _ended_records(http_port: int, count: int) -> list[dict[str, object]]:
    """The first ``count`` ended CDRs, read over the API once they are all there."""
    window = "since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z"
    records: list[dict[str, object]] = []
    token = _sign_in(http_port)

    def ended() -> bool:
        rows = _http_json(http_port, f"/api/v1/calls?{window}", token)["calls"]
        assert isinstance(rows, list)
        records[:] = [r for r in rows if r.get("ended_at")]
        return len(records) == count

    _until(ended, f"{count} call records")
    return sorted(records, key=lambda r: str(r["arrived_at"]))


def _sipp(sipp: str, sip_port: int, args: list[str], workdir: Path) -> None:
    call = subprocess.run(
        [sipp, f"127.0.0.1:{sip_port}", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert call.returncode == 0, call.stdout[-2000:] + call.stderr[-2000:]


def _call_the_ivr(sipp: str, sip_port: int, http_port: int, workdir: Path) -> dict[str, object]:
    """A SIPp caller keys 1 into the demo IVR; its CDR, read over the API, says it got there."""
    _sipp(sipp, sip_port, sipp_caller_args(SIPP_DIR / "ivr_caller.xml"), workdir)
    (record,) = _ended_records(http_port, 1)
    # The key (RTP to the published range) cut the welcome short and chose sales.
    assert record["digits"] == "1", record
    assert record["ivr_path"][:2] == ["welcome", "hours"], record  # type: ignore[index]
    path = record["ivr_path"]
    assert isinstance(path, list) and path[path.index("menu") + 1] == "sales", record
    return record


def test_the_image_runs_the_demo_centre_through_its_published_ports(
    podman: dict[str, str], tmp_path: Path
) -> None:
    sipp = require_tool("sipp")
    config = _config(tmp_path / "container.yaml")
    sip_port, http_port, low = free_port(), free_port(), _rtp_range()
    high = low + 2 * RTP_PAIRS - 1
    name = f"acd-test-{os.getpid()}"
    started = _run(
        [
            "podman", "run", "-d", "--name", name,
            "-p", f"127.0.0.1:{sip_port}:5060/udp",
            "-p", f"127.0.0.1:{http_port}:8080/tcp",
            "-p", f"127.0.0.1:{low}-{high}:{low}-{high}/udp",
            "-e", f"ACD_RTP_PORTS={low}-{high}",
            "-e", f"ACD_ADMIN_USER={ADMIN_USER}", "-e", f"ACD_ADMIN_PASSWORD={ADMIN_PASSWORD}",
            "-v", f"{config}:/opt/acd/config/container.yaml:ro",
            IMAGE, "acd", "serve", "--config", "/opt/acd/config/container.yaml",
        ],
        podman,
        120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        _until(lambda: _http_json(http_port, "/healthz")["status"] == "ok", "/healthz")
        health = _run(["podman", "healthcheck", "run", name], podman, 60)
        assert health.returncode == 0, health.stdout + health.stderr
        uid = _run(["podman", "exec", name, "id", "-u"], podman, 60)
        assert uid.stdout.strip() == "10001", uid  # the image's own user, not root
        espeak = _run(["podman", "exec", name, "espeak-ng", "--version"], podman, 60)
        assert espeak.returncode == 0, espeak

        _call_the_ivr(sipp, sip_port, http_port, tmp_path)
        logs = _run(["podman", "logs", name], podman, 60)
        text = logs.stdout + logs.stderr
        assert "media: RTP relay and statistics on the C fast path" in text, text
        assert "advertised addresses: SIP 127.0.0.1, SDP 127.0.0.1" in text, text
    finally:
        stopped = _run(["podman", "stop", "-t", "40", name], podman, 90)
        logs = _run(["podman", "logs", name], podman, 60)
        exit_code = _run(["podman", "inspect", "--format", "{{.State.ExitCode}}", name], podman, 60)
        _run(["podman", "rm", "-f", name], podman, 60)
    assert stopped.returncode == 0, stopped.stderr
    assert exit_code.stdout.strip() == "0", logs.stdout[-3000:] + logs.stderr[-3000:]
    assert "drained: no call in progress" in logs.stdout + logs.stderr


def test_podman_is_where_scripts_test_puts_it() -> None:
    """The test command installs what the container test needs (scripts/test)."""
    text = (ROOT / "scripts" / "test").read_text()
    tools = ("podman", "runc", "mmdebstrap", "podman-compose", "dnsname")
    assert all(tool in text for tool in tools), text
    assert shutil.which("podman") is not None or not os.environ.get("CI")


# Stand-ins for the official postgres and prom/prometheus images the compose file names,
# which cannot be pulled here: Debian's packages on the same base, with the interface
# deploy/compose.yaml uses (POSTGRES_USER/PASSWORD/DB and the data directory; the
# prometheus binary as the entrypoint, given its flags by the compose file).
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
data=/var/lib/postgresql/data
if [ ! -s "$data/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pw
    "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile=/tmp/pw --auth-host=scram-sha-256
    rm /tmp/pw
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
    "$bin/pg_ctl" -D "$data" -w -o "-c listen_addresses=''" start
    "$bin/createdb" -U "$POSTGRES_USER" "$POSTGRES_DB"
    "$bin/pg_ctl" -D "$data" -w stop
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*'
"""
STANDINS = {
    POSTGRES_STANDIN: f"""FROM {BASE}
RUN mkdir -p /var/lib/postgresql/data /run/postgresql \\
    && chown postgres:postgres /var/lib/postgresql/data /run/postgresql \\
    && chmod 700 /var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/postgres-entrypoint
USER postgres
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgres-entrypoint"]
""",
    PROMETHEUS_STANDIN: f"""FROM {BASE}
RUN mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
""",
}


@pytest.fixture(scope="module")
def standins(podman: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    for image, containerfile in STANDINS.items():
        context = tmp_path_factory.mktemp("standin")
        (context / "Containerfile").write_text(containerfile)
        (context / "entrypoint.sh").write_text(POSTGRES_ENTRYPOINT)
        built = _run(["podman", "build", "-t", image, str(context)], podman, 300)
        assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    return podman


def _start_agent_phone(env: dict[str, str], project: str) -> None:
    """SIPp as agent 1001's phone in a container on the stack's network: REGISTER with
    digest from port 5070, then answer calls there (bench/sipp/agent_uas.xml). The
    account names the engine by address, as the host tests do: SIPp puts its remote
    address, not the Request-URI, in the digest uri, which the engine rightly refuses
    when the two differ."""
    name = f"{project}_agent"
    started = _run(
        ["podman", "run", "-d", "--name", name, "--network", f"{project}_default",
         "-v", f"{SIPP_DIR}:/sipp:ro", BASE, "sleep", "600"],
        env,
        60,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    engine = "$(getent hosts acd | cut -d ' ' -f 1):5060"
    sipp = f'sipp {engine} -i "$(hostname -i)" -p 5070 -nostdin'
    credentials = f"[authentication username={AGENT} password={AGENT_PASSWORD}]"
    account = f"SEQUENTIAL\\n{AGENT};{engine};{credentials}\\n"
    register = _run(
        ["podman", "exec", name, "sh", "-c",
         f'printf "{account}" > /tmp/account.csv && '
         f"{sipp} -sf /sipp/register.xml -inf /tmp/account.csv -m 1 -timeout 15s -timeout_error"],
        env,
        60,
    )  # fmt: skip
    assert register.returncode == 0, register.stdout[-2000:] + register.stderr[-2000:]
    answering = _run(
        ["podman", "exec", "-d", name, "sh", "-c",
         f'{sipp} -sf /sipp/agent_uas.xml -mi "$(hostname -i)" -mp 6000 -timeout 120s'],
        env,
        60,
    )  # fmt: skip
    assert answering.returncode == 0, answering.stderr


def _prometheus(port: int, path: str) -> Any:
    body = _http_json(port, path)
    assert body["status"] == "success", body
    return body["data"]


def test_the_compose_stack_takes_a_call_into_postgresql_and_prometheus_sees_it(
    standins: dict[str, str], tmp_path: Path
) -> None:
    """deploy/compose.yaml up (all but Grafana, which cannot run here): a SIPp call to the
    IVR through the published ports, its CDR in PostgreSQL, a caller to a queue answered
    by an agent's phone on the stack's network, the engine scraped by Prometheus with the
    shipped rules loaded; then down, the engine drained cleanly."""
    sipp = require_tool("sipp")
    compose_tool = require_tool("podman-compose")
    config_dir = tmp_path / "etc-acd"
    config_dir.mkdir()
    text = _config(tmp_path / "unused.yaml").read_text()
    # The operator's own file in ACD_CONFIG_DIR; the flows and prompts are the image's.
    text = text.replace("ivr_dir: ivr\n", "ivr_dir: /opt/acd/config/ivr\n")
    text = text.replace("  dir: prompts\n", "  dir: /opt/acd/config/prompts\n")
    assert "/opt/acd/config/ivr" in text and "/opt/acd/config/prompts" in text
    (config_dir / "acd.yaml").write_text(text)
    sip_port, http_port, prometheus_port, low = free_port(), free_port(), free_port(), _rtp_range()
    project = f"acd-test-{os.getpid()}"
    env = {
        **standins,
        "ACD_IMAGE": IMAGE,
        "POSTGRES_IMAGE": POSTGRES_STANDIN,
        "PROMETHEUS_IMAGE": PROMETHEUS_STANDIN,
        "ACD_DB_PASSWORD": "db-secret-for-tests",
        "ACD_ADMIN_USER": ADMIN_USER,
        "ACD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GRAFANA_ADMIN_PASSWORD": "unused-here",
        "ACD_CONFIG_DIR": str(config_dir),
        "ACD_CONFIG": "/etc/acd/acd.yaml",
        "ACD_SIP_PORT": str(sip_port),
        "ACD_HTTP_PORT": str(http_port),
        "PROMETHEUS_PORT": str(prometheus_port),
        "ACD_RTP_PORTS": f"{low}-{low + 2 * RTP_PAIRS - 1}",
    }
    base = [compose_tool, "-p", project, "-f", str(COMPOSE)]
    up = _run([*base, "up", "-d", "acd", "postgres", "prometheus"], env, 300)
    assert up.returncode == 0, (up.stdout + up.stderr)[-5000:]
    engine = f"{project}_acd_1"
    try:
        _until(lambda: _http_json(http_port, "/healthz")["status"] == "ok", "/healthz", 120)
        _call_the_ivr(sipp, sip_port, http_port, tmp_path)
        # The record is in the stack's PostgreSQL, not in a SQLite file of the engine's.
        rows = _run(
            ["podman", "exec", f"{project}_postgres_1",
             "psql", "-U", "acd", "-d", "acd", "-tAc", "SELECT count(*) FROM calls"],
            env,
            60,
        )  # fmt: skip
        assert rows.returncode == 0 and rows.stdout.strip() == "1", rows
        files = _run(["podman", "exec", engine, "ls", "/var/lib/acd"], env, 60)
        assert "acd.db" not in files.stdout.split(), files.stdout

        # An agent's phone on the stack's network (a phone on the host's loopback is out of
        # the engine's reach from inside): registered with digest, logged in over the API,
        # it answers a caller to queue 200 who came through the published ports.
        _start_agent_phone(env, project)
        token = _sign_in(http_port)
        login = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/api/v1/agents/{AGENT}/login",
            headers={"Authorization": f"Bearer {token}"},
            method="POST",
        )
        with urllib.request.urlopen(login, timeout=10) as response:
            assert response.status == 200
        _sipp(
            sipp, sip_port, sipp_caller_args(SIPP_DIR / "queue_caller.xml", service="200"), tmp_path
        )
        queued = _ended_records(http_port, 2)[1]
        assert queued["queue"] == "sales" and queued["agent"] == AGENT, queued
        assert queued["disposition"] == "answered", queued

        targets: list[dict[str, Any]] = []

        def scraped() -> bool:
            targets[:] = _prometheus(prometheus_port, "/api/v1/targets")["activeTargets"]
            return any(t["labels"]["job"] == "acd" and t["health"] == "up" for t in targets)

        try:
            _until(scraped, "Prometheus scraping the engine", 90)
        except AssertionError as error:
            raise AssertionError(f"{error}: {targets}") from None
        groups = _prometheus(prometheus_port, "/api/v1/rules")["groups"]
        assert groups and all(group["rules"] for group in groups), groups
        # The call counted by the engine, as Prometheus holds it.
        query = "/api/v1/query?query=sum(acd_call_attempts_total)"

        def counted() -> bool:
            result = _prometheus(prometheus_port, query)["result"]
            return bool(result) and float(result[0]["value"][1]) >= 1

        _until(counted, "the call in Prometheus", 60)
    finally:
        logs = _run(["podman", "logs", engine], env, 60)
        _run(["podman", "rm", "-f", f"{project}_agent"], env, 60)
        down = _run([*base, "down", "-v", "-t", "40"], env, 300)
    assert down.returncode == 0, down.stdout + down.stderr
    text = logs.stdout + logs.stderr
    assert "storage: postgresql://acd@postgres:5432/acd" in text, text[-3000:]
    assert "db-secret-for-tests" not in text, "the database password reached the log"
