"""DTLS-SRTP (RFC 5763, RFC 5764) for a WebRTC leg, sans-I/O over OpenSSL's memory BIOs.

:class:`DtlsCertificate` is the engine's identity: an ECDSA P-256 key with a
self-signed certificate, made at start-up or loaded from PEM files, whose
SHA-256 fingerprint goes into every SDP (``a=fingerprint``). Browsers do not
care who signed it: the fingerprint, carried in signalling, is what binds
the DTLS peer to the SIP dialog.

:class:`DtlsSession` is one handshake and what follows it: datagrams in
(:meth:`~DtlsSession.receive_datagram`), datagrams out
(:meth:`~DtlsSession.datagrams_to_send`), a retransmission deadline
(:meth:`~DtlsSession.get_timer`, :meth:`~DtlsSession.handle_timer`) and
events. OpenSSL does the protocol (pyOpenSSL, with no socket: reads and
writes go through memory BIOs); this class cuts its output into datagrams
on record boundaries, checks the peer's certificate against the fingerprint
from its SDP, which may arrive after the handshake has finished (a browser
answering our offer starts DTLS before its 200 OK reaches us), and exports
the SRTP keys (RFC 5764 4.2). OpenSSL reads the wall clock for its own
retransmission timer; that timer is the only clock here, and the session
reports it as a deadline on the caller's clock.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import hmac
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

__all__ = [
    "SRTP_PROFILES",
    "DtlsCertificate",
    "DtlsClosed",
    "DtlsConnected",
    "DtlsError",
    "DtlsEvent",
    "DtlsFailed",
    "DtlsRole",
    "DtlsSession",
    "Fingerprint",
    "SrtpKeys",
]

logger = logging.getLogger(__name__)

# RFC 5764 4.1.2 profile names (OpenSSL spells them so), best first. AES-GCM
# costs less per packet with AES-NI; AES_CM with HMAC-SHA1-80 is the one every
# WebRTC endpoint must offer (RFC 8827 6.5).
_PROFILES: Final[dict[bytes, tuple[int, int]]] = {
    b"SRTP_AEAD_AES_128_GCM": (16, 12),
    b"SRTP_AES128_CM_SHA1_80": (16, 14),
}
SRTP_PROFILES: Final = tuple(name.decode() for name in _PROFILES)
"""The SRTP protection profiles offered in the handshake, our preference first."""
_MTU: Final = 1200  # what fits a browser's path MTU, with room for IPv6 and TURN
_RECORD_HEADER: Final = 13
_CIPHERS: Final = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA"
)


class DtlsError(ValueError):
    """A certificate or fingerprint that cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A certificate fingerprint as SDP carries it (RFC 8122 5): ``sha-256 AB:CD:...``."""

    algorithm: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Read an ``a=fingerprint`` value; raises :class:`DtlsError`."""
        algorithm, _, value = text.strip().partition(" ")
        value = value.strip()
        if not algorithm or not value:
            raise DtlsError(f"fingerprint {text!r} is not 'hash-function fingerprint'")
        return cls(algorithm.lower(), value.upper())

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether the certificate has this fingerprint (sha-256, sha-384 or sha-512)."""
        digest = _HASHES.get(self.algorithm)
        if digest is None:
            return False
        return hmac.compare_digest(_colon_hex(certificate.fingerprint(digest)), self.value)


_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha-256": hashes.SHA256(),
    "sha-384": hashes.SHA384(),
    "sha-512": hashes.SHA512(),
}


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{octet:02X}" for octet in digest)


class DtlsCertificate:
    """The engine's DTLS identity: a private key and its certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}
        self.fingerprint = Fingerprint(
            "sha-256", _colon_hex(certificate.fingerprint(hashes.SHA256()))
        )

    @classmethod
    def generate(cls, *, days: int = 365) -> DtlsCertificate:
        """A new ECDSA P-256 key with a self-signed certificate valid for ``days``."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, secrets.token_hex(8))])
        now = datetime.datetime.now(tz=datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, certificate: Path, private_key: Path) -> DtlsCertificate:
        """Read a PEM certificate and its PEM (unencrypted) EC private key."""
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
        key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise DtlsError(f"{private_key}: an EC private key is needed for DTLS")
        if cert.public_key() != key.public_key():
            raise DtlsError(f"{private_key} is not the key of {certificate}")
        return cls(key, cert)

    def context(self, profiles: tuple[str, ...] = SRTP_PROFILES) -> SSL.Context:
        """An OpenSSL DTLS context with this identity and the SRTP profiles (RFC 5764 4.1).

        Made once per set of profiles and shared by every session.
        """
        ctx = self._contexts.get(profiles)
        if ctx is not None:
            return ctx
        unknown = [p for p in profiles if p.encode() not in _PROFILES]
        if unknown or not profiles:
            raise DtlsError(f"unsupported SRTP profiles {unknown or profiles!r}")
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
        # Any certificate is accepted here; the fingerprint check comes after.
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        ctx.use_certificate(self.certificate)
        ctx.use_privatekey(self.key)
        ctx.set_cipher_list(_CIPHERS)
        ctx.set_tlsext_use_srtp(":".join(profiles).encode())
        self._contexts[profiles] = ctx
        return ctx


class DtlsRole(enum.Enum):
    """Which side starts the handshake: ``a=setup:active`` is the client (RFC 5763 5)."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The SRTP master keys and salts exported from the handshake (RFC 5764 4.2)."""

    profile: str
    local: bytes
    """Key then salt, for what we send."""
    remote: bytes
    """Key then salt, for what the peer sends."""


@dataclass(frozen=True, slots=True)
class DtlsConnected:
    """The handshake finished and the peer's certificate matched its SDP fingerprint."""

    keys: SrtpKeys


@dataclass(frozen=True, slots=True)
class DtlsFailed:
    """The handshake failed, or the peer's certificate is not the one its SDP named."""

    reason: str


@dataclass(frozen=True, slots=True)
class DtlsClosed:
    """The peer closed the association (close_notify)."""


DtlsEvent = DtlsConnected | DtlsFailed | DtlsClosed


class _State(enum.Enum):
    NEW = "new"
    HANDSHAKING = "handshaking"
    VERIFYING = "verifying"  # done, waiting for the peer's SDP fingerprint
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class DtlsSession:
    """One DTLS association over datagrams, client or server, with SRTP key export."""

    def __init__(
        self,
        certificate: DtlsCertificate,
        role: DtlsRole,
        remote_fingerprint: Fingerprint | None = None,
        *,
        profiles: tuple[str, ...] = SRTP_PROFILES,
    ) -> None:
        self.role = role
        self.remote_fingerprint = remote_fingerprint
        self.keys: SrtpKeys | None = None
        self._ssl = SSL.Connection(certificate.context(profiles), None)
        self._ssl.set_ciphertext_mtu(_MTU)
        if role is DtlsRole.CLIENT:
            self._ssl.set_connect_state()
        else:
            self._ssl.set_accept_state()
        self._state = _State.NEW
        self._out: list[bytes] = []
        self._events: deque[DtlsEvent] = deque()

    @property
    def state(self) -> str:
        """``new``, ``handshaking``, ``verifying``, ``connected``, ``failed`` or ``closed``."""
        return self._state.value

    @property
    def connected(self) -> bool:
        """Whether SRTP keys are ready and the peer is verified."""
        return self._state is _State.CONNECTED

    def start(self) -> None:
        """Begin: a client sends its ClientHello; a server waits for one. Idempotent."""
        if self._state is _State.NEW:
            self._state = _State.HANDSHAKING
            self._handshake()

    def set_remote_fingerprint(self, fingerprint: Fingerprint) -> None:
        """The fingerprint from the peer's SDP; checked at once if the handshake is done."""
        self.remote_fingerprint = fingerprint
        if self._state is _State.VERIFYING:
            self._verify()

    def receive_datagram(self, data: bytes) -> None:
        """One datagram whose first octet is 20-63 (RFC 7983)."""
        if self._state in (_State.FAILED, _State.CLOSED):
            return
        if self._state is _State.NEW:
            self._state = _State.HANDSHAKING
        try:
            self._ssl.bio_write(data)
        except SSL.Error as exc:
            self._fail(f"DTLS input refused: {exc}")
            return
        if self._state is _State.HANDSHAKING:
            self._handshake()
        else:
            self._read_application_data()
        self._drain()

    def datagrams_to_send(self) -> list[bytes]:
        """What to send to the peer now, each at most one datagram."""
        self._drain()
        out, self._out = self._out, []
        return out

    def get_timer(self, now: float) -> float | None:
        """When OpenSSL wants to retransmit its last flight, on the caller's clock."""
        if self._state is not _State.HANDSHAKING:
            return None
        timeout = self._ssl.DTLSv1_get_timeout()
        return None if timeout is None else now + timeout

    def handle_timer(self) -> None:
        """Retransmit if OpenSSL's timer has run out (it keeps its own clock)."""
        if self._state is _State.HANDSHAKING:
            try:
                self._ssl.DTLSv1_handle_timeout()
            except SSL.Error as exc:
                self._fail(f"DTLS retransmission failed: {exc}")
            self._drain()

    def next_event(self) -> DtlsEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def close(self) -> None:
        """Send close_notify if connected; the session takes no more input."""
        if self._state in (_State.CONNECTED, _State.VERIFYING):
            with contextlib.suppress(SSL.Error):
                self._ssl.shutdown()
            self._drain()
        self._state = _State.CLOSED

    # -- internals ----------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            self._drain()
            return
        except SSL.Error as exc:
            self._drain()  # the alert, if OpenSSL wrote one
            self._fail(f"DTLS handshake failed: {exc}")
            return
        self._drain()
        self._state = _State.VERIFYING
        if self.remote_fingerprint is not None:
            self._verify()

    def _verify(self) -> None:
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        fingerprint = self.remote_fingerprint
        if certificate is None or fingerprint is None or not fingerprint.matches(certificate):
            self._fail("the peer's certificate does not match the fingerprint in its SDP")
            return
        try:
            self.keys = self._export_keys()
        except DtlsError as exc:
            self._fail(str(exc))
            return
        self._state = _State.CONNECTED
        self._events.append(DtlsConnected(self.keys))

    def _export_keys(self) -> SrtpKeys:
        profile = self._ssl.get_selected_srtp_profile()
        if profile not in _PROFILES:
            raise DtlsError(f"no SRTP profile agreed (got {profile!r})")
        key_length, salt_length = _PROFILES[profile]
        material = self._ssl.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (key_length + salt_length)
        )
        # RFC 5764 4.2: client key, server key, client salt, server salt.
        client = material[:key_length] + material[2 * key_length : 2 * key_length + salt_length]
        server = material[key_length : 2 * key_length] + material[2 * key_length + salt_length :]
        local, remote = (client, server) if self.role is DtlsRole.CLIENT else (server, client)
        return SrtpKeys(profile.decode(), local, remote)

    def _read_application_data(self) -> None:
        # WebRTC audio sends no application data over DTLS; read to see
        # alerts, close_notify and retransmitted handshake records.
        try:
            self._ssl.recv(1500)
        except SSL.ZeroReturnError:
            self._state = _State.CLOSED
            self._events.append(DtlsClosed())
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            logger.debug("DTLS: unreadable record after the handshake: %s", exc)

    def _fail(self, reason: str) -> None:
        if self._state is not _State.FAILED:
            self._state = _State.FAILED
            logger.info("%s", reason)
            self._events.append(DtlsFailed(reason))

    def _drain(self) -> None:
        """Move what OpenSSL wrote into whole-record datagrams of at most _MTU octets."""
        pending = b""
        while True:
            try:
                chunk = self._ssl.bio_read(65536)
            except SSL.WantReadError:
                break
            except SSL.Error:
                break
            if not chunk:
                break
            pending += chunk
        if not pending:
            return
        datagram = b""
        offset = 0
        while offset + _RECORD_HEADER <= len(pending):
            length = int.from_bytes(pending[offset + 11 : offset + 13], "big")
            record = pending[offset : offset + _RECORD_HEADER + length]
            offset += _RECORD_HEADER + length
            if datagram and len(datagram) + len(record) > _MTU:
                self._out.append(datagram)
                datagram = b""
            datagram += record
        if offset < len(pending):
            datagram += pending[offset:]  # not a whole record: pass it on as it is
        if datagram:
            self._out.append(datagram)
