"""The full-path load benchmark cannot rot: a short run of bench/acd_load.py in the suite.

``--smoke`` is a few SIPp calls a second for a few seconds through the whole
path (SIPp callers with RTP, a queue, registered SIPp agent phones echoing
RTP, recording, the engine's own call records read back): the exit status
says whether every call was answered, and every figure the benchmark prints
must be there.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT, require_tool

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("path", ["queue", "ivr"])
def test_smoke_run_answers_every_call_and_prints_its_figures(path: str) -> None:
    """Straight to the queue, and through the IVR's menu: there a call whose
    key was lost is answered by the IVR alone, which the bench counts as
    failed, so ``0 failed`` proves the key reached the menu."""
    require_tool("sipp")
    extra = ["--ivr"] if path == "ivr" else []
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "acd_load.py"), "--smoke", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    line = next((x for x in output.splitlines() if x.startswith("offered ")), "")
    for figure in (
        r"achieved [\d.]+/s",
        r"connect 100\.000%",
        r"0 failed",
        r"wait ms p50/p99/max \d+/\d+/\d+",
        r"INVITE->200 p99 \d+ ms",
        r"engine CPU \d+% \(SIPp's CPU \d+%\)",
        r"RSS \d+ MiB",
        r"loop lag p99 <=",
        r"RTP in/out [\d,]+/[\d,]+ pkt/s",
    ):
        assert re.search(figure, line), f"{figure!r} not in {line!r}\n{output}"
    assert "ceiling" in output, output
