"""The mixer's benchmark cannot rot: a short run of bench/media_mixer.py prints every mode."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def test_a_short_run_prints_the_bridge_and_every_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "media_mixer.py"), "--rounds", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^bridge .*: [\d.]+ µs per round$", output, re.M), output
    for mode in ("listen", "whisper", "barge"):
        assert re.search(rf"^{mode} *: [\d.]+ µs per round .* calls per core$", output, re.M), (
            output
        )
