"""A caller who hangs up while an extension rings: CANCEL on both sides, on the wire.

The extension's phone is SIPp (bench/sipp/ringing_uas.xml: 180, never
answers) registered as 1001; the caller is SIPp too
(bench/sipp/caller_cancel.xml). The caller's CANCEL gets 200 and its INVITE
487; the engine CANCELs the INVITE it sent to the phone, which the phone's
scenario requires to complete; the record says the caller abandoned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import SIPP_DIR, RunningEngine, free_port
from .interop_helpers import sipp_caller_args
from .test_acd_sipp import (
    Sipp,
    acd_config,
    sipp_factory,  # noqa: F401 - a fixture, used by name
    wait_records,
)


def test_caller_cancel_while_ringing_cancels_the_phone_too(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture imported above
) -> None:
    engine = engine_factory(acd_config(tmp_path, routes={"_10XX": 'extension: "*", record: false'}))
    sipp = sipp_factory(engine)
    port = free_port()
    sipp.register("1001", port)
    phone = sipp._run(
        "phone-1001",
        [
            "-sf",
            str(SIPP_DIR / "ringing_uas.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_port()),
            "-m",
            "1",
            "-timeout",
            "30s",
        ],
    )
    caller = sipp._run(
        "caller",
        sipp_caller_args(SIPP_DIR / "caller_cancel.xml", service="1001", timeout="30s"),
    )
    assert caller.wait(timeout=30) == 0, caller.describe()
    assert phone.wait(timeout=30) == 0, phone.describe()  # it saw the CANCEL and ACKed the 487
    (record,) = wait_records(engine, 1)
    assert record["disposition"] == "abandoned", record
    assert record["hangup_side"] == "caller"
    assert record["sip_cause"] == 487
    assert record["agent"] is None
