"""pyVoIP 1.6.8 (``pyVoIP.VoIP.VoIPPhone``) registers with the engine over UDP.

What pyVoIP does, and what the harness does about it:

- Its 401 handling reads only the first WWW-Authenticate (the engine's SHA-256
  one) but always answers with MD5 and no qop, using that challenge's realm
  and nonce. The engine accepts this with its default challenges, because both
  share one nonce and RFC 2069-style MD5 without qop is still allowed, so the
  default configuration is used.
- It hashes and sends the digest uri ``sip:<server>;transport=UDP`` while its
  Request-URI is ``sip:<server>``. The engine rightly refuses a digest uri that
  is not the Request-URI (RFC 2617 section 3.2.2.5), so the harness rewrites
  the Request-URI of pyVoIP's REGISTERs to that same URI.
- It does not answer OPTIONS (it knows only INVITE, ACK, BYE and CANCEL), so
  the engine's keep-alive pings fail and it drops the binding as unreachable
  after ``keepalive_failures`` pings: a pyVoIP agent stays registered only if
  keep-alives are off or it refreshes faster than they fail.
- ``start()`` and ``stop()`` block on the SIP exchange; ``register_timeout``
  bounds each wait. It runs a receive thread and a re-register timer thread;
  the fixture stops every phone from a watchdog thread with a deadline and
  checks that no pyVoIP thread is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVoIP.VoIP import PhoneStatus, VoIPPhone

from .conftest import RunningEngine, agent_password, free_port
from .interop_helpers import POLL, engine_config, engine_healthy, metric

pytestmark = pytest.mark.interop

USER = "1002"
SIP_TIMEOUT = 5  # pyVoIP's wait for each answer (default 30 s)
STOP_TIMEOUT = 20.0
# pyVoIP names its threads "SIP Recieve" and "SIP Register CSeq: <n>".
PYVOIP_THREAD_PREFIX = "SIP "

MakePhone = Callable[..., VoIPPhone]


def _match_request_uri_to_digest_uri(phone: VoIPPhone) -> None:
    sip = phone.sip
    request_line = f"REGISTER sip:{sip.server} SIP/2.0\r\n"
    digest_line = f"REGISTER sip:{sip.server};transport=UDP SIP/2.0\r\n"
    for name in ("gen_first_response", "gen_register"):
        build = getattr(sip, name)

        def rewritten(*args: Any, _build: Callable[..., str] = build, **kwargs: Any) -> str:
            message = _build(*args, **kwargs)
            assert message.startswith(request_line), message
            return digest_line + message[len(request_line) :]

        setattr(sip, name, rewritten)


def _stop(phone: VoIPPhone) -> None:
    """phone.stop() on a watchdog thread: it blocks on the network and may retry."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            phone.stop()
        except BaseException as exc:  # reported on the test's thread
            errors.append(exc)

    stopper = threading.Thread(target=run, name="stop pyVoIP phone", daemon=True)
    stopper.start()
    stopper.join(STOP_TIMEOUT)
    assert not stopper.is_alive(), f"pyVoIP's stop() still blocked after {STOP_TIMEOUT} s"
    if errors:
        raise errors[0]


def _pyvoip_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PYVOIP_THREAD_PREFIX)]


def _wait_for_status(phone: VoIPPhone, status: PhoneStatus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while phone.get_status() != status:
        assert time.monotonic() < deadline, f"phone is {phone.get_status()}, not {status}"
        time.sleep(POLL)


@pytest.fixture
def phones() -> Iterator[MakePhone]:
    """Make VoIPPhones for an engine's accounts; every one is stopped at the end."""
    made: list[VoIPPhone] = []

    def make(engine: RunningEngine, user: str = USER, password: str | None = None) -> VoIPPhone:
        phone = VoIPPhone(
            "127.0.0.1",
            engine.sip_port,
            user,
            agent_password(user) if password is None else password,
            myIP="127.0.0.1",
            sipPort=free_port(),
        )
        phone.sip.register_timeout = SIP_TIMEOUT
        _match_request_uri_to_digest_uri(phone)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        _stop(phone)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _pyvoip_threads():
        assert time.monotonic() < deadline, f"pyVoIP threads left: {_pyvoip_threads()}"
        time.sleep(POLL)


def test_registers_and_unregisters_on_stop(engine: RunningEngine, phones: MakePhone) -> None:
    phone = phones(engine)
    phone.start()
    assert phone.get_status() == PhoneStatus.REGISTERED

    engine.wait_for(lambda: engine.registrations(USER), 5.0, "pyVoIP's registration")
    [row] = engine.registrations(USER)
    port = phone.sip.myPort
    assert row["user"] == USER
    assert row["contact"] == f"sip:{USER}@127.0.0.1:{port};transport=UDP"
    assert row["destination"] == f"udp:127.0.0.1:{port}"
    assert "pyVoIP" in str(row["user_agent"])
    expires = row["expires_in"]
    assert isinstance(expires, int) and 0 < expires <= 120, row  # pyVoIP asks for 120 s

    _stop(phone)
    assert phone.get_status() == PhoneStatus.INACTIVE
    # stop() unregisters (Expires 0, challenged and answered) before it returns.
    assert engine.registrations(USER) == []
    assert engine_healthy(engine)


# When pyVoIP gives up it closes its socket under its own receive thread, which
# then dies with EBADF instead of ending: a pyVoIP bug, harmless here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_wrong_password_fails_without_registration(
    engine: RunningEngine, phones: MakePhone
) -> None:
    phone = phones(engine, password="not-the-password")
    # start() does not raise: pyVoIP retries on a timer thread and, after
    # REGISTER_FAILURE_THRESHOLD (3) refusals, stops itself and reports FAILED.
    phone.start()
    _wait_for_status(phone, PhoneStatus.FAILED, 60.0)

    assert engine.registrations(USER) == []
    assert engine_healthy(engine)
    assert metric(engine, "sip_auth_failures_total") >= 3


def test_unanswered_keepalives_drop_the_binding(
    tmp_path: Path, engine_factory: Callable[[Path], RunningEngine], phones: MakePhone
) -> None:
    # A ping a second; with T1 = 50 ms an unanswered ping fails after 3.2 s
    # (Timer F) and one failure removes the binding, well before its 120 s expiry.
    engine = engine_factory(
        engine_config(
            tmp_path / "keepalive.yaml",
            t1=0.05,
            registrar="keepalive_interval: 1\nkeepalive_failures: 1",
        )
    )
    phone = phones(engine)
    phone.start()
    engine.wait_for(lambda: engine.registrations(USER), 5.0, "pyVoIP's registration")

    engine.wait_for(lambda: not engine.registrations(USER), 15.0, "the binding to be dropped")
    assert metric(engine, "sip_requests_total", method="OPTIONS", direction="out") >= 1
    assert metric(engine, "sip_responses_total", method="OPTIONS", direction="in") == 0
    assert phone.get_status() == PhoneStatus.REGISTERED  # pyVoIP never noticed
