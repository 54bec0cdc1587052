"""Registrar throughput under SIPp: authenticated REGISTERs per second, 0 failures.

Starts ``acd serve`` (through the CLI, as an operator would) with N accounts,
then runs SIPp's bench/sipp/register.xml at increasing rates. Each SIPp call
is one full digest registration (REGISTER, 401, REGISTER with credentials,
200), so "registrations/s" counts 2 transactions each. Prints one line per
rate with the achieved rate, failures and response times, and the best rate
sustained with no failure.

    .venv/bin/python bench/sip_registrar.py [--rates 500,1000,2000,3000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import agent_password, start_engine, write_config  # noqa: E402


def run_rate(engine_port: int, inf: Path, rate: int, seconds: float, work: Path) -> dict[str, str]:
    calls = int(rate * seconds)
    stat = work / f"stat-{rate}.csv"
    cmd = [
        "sipp",
        f"127.0.0.1:{engine_port}",
        "-sf",
        str(ROOT / "bench/sipp/register.xml"),
        "-inf",
        str(inf),
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(max(rate, 100)),
        "-timeout",
        f"{int(seconds * 3 + 30)}s",
        "-timeout_error",
        "-max_socket",
        "1",
        "-bg",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
    ]
    # -bg daemonises; run in the foreground instead so we can wait on it.
    cmd.remove("-bg")
    started = time.perf_counter()
    subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    with stat.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1]
    last["_elapsed"] = f"{elapsed:.2f}"
    last["_calls"] = str(calls)
    return last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="acd-bench-"))
    config = write_config(
        work / "acd.yaml",
        agents=args.accounts,
        first=100000,
        security="auth_failures_per_minute: 1000000",
    )
    engine = start_engine(config, work)
    # SIPp hashes the digest uri as sip:<remote ip>:<remote port> whatever the
    # Request-URI says, so the domain field is the engine's address.
    domain = f"127.0.0.1:{engine.sip_port}"
    inf = work / "users.csv"
    lines = ["SEQUENTIAL"]
    for n in range(100000, 100000 + args.accounts):
        password = agent_password(str(n))
        lines.append(f"{n};{domain};[authentication username={n} password={password}];")
    inf.write_text("\n".join(lines) + "\n")
    version = sys.version.split()[0]
    print(f"engine pid {engine.process.pid}, python {version}, cpus {os.cpu_count()}")
    best = 0.0
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            stats = run_rate(engine.sip_port, inf, rate, args.seconds, work)
            ok = int(stats["SuccessfulCall(C)"])
            failed = int(stats["FailedCall(C)"])
            achieved = ok / float(stats["_elapsed"])
            rt = stats.get("CallLength(C)", "?")
            print(
                f"target {rate:5d}/s: {ok} registrations ok, {failed} failed, "
                f"{achieved:7.0f}/s achieved over {stats['_elapsed']} s, "
                f"mean call time {rt}"
            )
            if failed == 0 and ok == int(stats["_calls"]):
                best = max(best, achieved)
    finally:
        engine.stop()
    print(f"best sustained with 0 failures: {best:.0f} authenticated registrations/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
