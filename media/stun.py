"""STUN messages (RFC 8489) as far as ICE connectivity checks need them.

:class:`StunMessage` parses and serialises the header and the attributes an
ICE agent reads or writes (RFC 8445 7.1 and 16.1): USERNAME, PRIORITY,
USE-CANDIDATE, ICE-CONTROLLED, ICE-CONTROLLING, XOR-MAPPED-ADDRESS,
ERROR-CODE, MESSAGE-INTEGRITY and FINGERPRINT. Other attributes are kept as
raw values in order, so nothing is lost by parsing.

Integrity is checked on the bytes as received (:func:`verify_integrity`,
:func:`verify_fingerprint`), never on a re-serialisation, because a sender
may pad attributes with any octets (RFC 5769's vectors pad with spaces).
Sans-I/O: bytes in, objects and bytes out, no socket and no clock.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from hashlib import sha1
from typing import Final

__all__ = [
    "BINDING_ERROR",
    "BINDING_INDICATION",
    "BINDING_REQUEST",
    "BINDING_SUCCESS",
    "MAGIC_COOKIE",
    "StunError",
    "StunMessage",
    "is_stun",
    "verify_fingerprint",
    "verify_integrity",
]

MAGIC_COOKIE: Final = 0x2112A442
BINDING_REQUEST: Final = 0x0001
BINDING_INDICATION: Final = 0x0011
BINDING_SUCCESS: Final = 0x0101
BINDING_ERROR: Final = 0x0111

# Attribute types (RFC 8489 18.3, RFC 8445 16.1).
MAPPED_ADDRESS: Final = 0x0001
USERNAME: Final = 0x0006
MESSAGE_INTEGRITY: Final = 0x0008
ERROR_CODE: Final = 0x0009
XOR_MAPPED_ADDRESS: Final = 0x0020
PRIORITY: Final = 0x0024
USE_CANDIDATE: Final = 0x0025
SOFTWARE: Final = 0x8022
FINGERPRINT: Final = 0x8028
ICE_CONTROLLED: Final = 0x8029
ICE_CONTROLLING: Final = 0x802A

_FINGERPRINT_XOR: Final = 0x5354554E
_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE = struct.Struct("!HH")
_HEADER_SIZE: Final = 20
_INTEGRITY_SIZE: Final = 24  # attribute header + HMAC-SHA1
_FINGERPRINT_SIZE: Final = 8


class StunError(ValueError):
    """The datagram is not a well-formed STUN message; the text says why."""


def is_stun(data: bytes) -> bool:
    """Whether a datagram looks like STUN: first two bits zero, the magic cookie (RFC 8489 6)."""
    return (
        len(data) >= _HEADER_SIZE
        and data[0] < 4
        and data[4:8] == b"\x21\x12\xa4\x42"
        and not data[3] & 3
    )


@dataclass(slots=True)
class StunMessage:
    """One STUN message: its type, transaction id and attributes in order.

    ``attributes`` holds ``(type, value)`` pairs as on the wire (values
    unpadded). The typed properties read and :meth:`add` helpers write the
    ones ICE uses; MESSAGE-INTEGRITY and FINGERPRINT are computed by
    :meth:`serialize`, not kept in ``attributes``.
    """

    message_type: int
    transaction_id: bytes = field(default_factory=lambda: secrets.token_bytes(12))
    attributes: list[tuple[int, bytes]] = field(default_factory=list)
    has_integrity: bool = False
    has_fingerprint: bool = False

    @classmethod
    def parse(cls, data: bytes) -> StunMessage:
        """Parse a datagram; raises :class:`StunError` naming what is wrong."""
        if len(data) < _HEADER_SIZE:
            raise StunError(f"{len(data)} octets is shorter than a STUN header")
        message_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
        if message_type & 0xC000:
            raise StunError("the first two bits of a STUN message must be zero")
        if cookie != MAGIC_COOKIE:
            raise StunError(f"magic cookie {cookie:#010x}, expected {MAGIC_COOKIE:#010x}")
        if length % 4 or _HEADER_SIZE + length != len(data):
            raise StunError(f"length {length} does not match the {len(data)}-octet datagram")
        message = cls(message_type, transaction_id)
        offset = _HEADER_SIZE
        while offset < len(data):
            if offset + 4 > len(data):
                raise StunError("truncated attribute header")
            kind, size = _ATTRIBUTE.unpack_from(data, offset)
            start = offset + 4
            end = start + size
            if end > len(data):
                raise StunError(f"attribute {kind:#06x} of {size} octets runs past the message")
            value = data[start:end]
            offset = start + size + (-size % 4)
            if message.has_fingerprint:
                raise StunError("an attribute follows FINGERPRINT (RFC 8489 14.7)")
            if kind == FINGERPRINT:
                if size != 4:
                    raise StunError("FINGERPRINT must be 4 octets")
                message.has_fingerprint = True
            elif message.has_integrity:
                continue  # RFC 8489 14.5: only FINGERPRINT counts after MESSAGE-INTEGRITY
            elif kind == MESSAGE_INTEGRITY:
                if size != 20:
                    raise StunError("MESSAGE-INTEGRITY must be 20 octets")
                message.has_integrity = True
            else:
                message.attributes.append((kind, value))
        return message

    def serialize(self, integrity_key: bytes | None = None, *, fingerprint: bool = True) -> bytes:
        """The message as bytes, with MESSAGE-INTEGRITY when a key is given, then FINGERPRINT."""
        body = b"".join(
            _ATTRIBUTE.pack(kind, len(value)) + value + b"\0" * (-len(value) % 4)
            for kind, value in self.attributes
        )
        if integrity_key is not None:
            header = _HEADER.pack(
                self.message_type, len(body) + _INTEGRITY_SIZE, MAGIC_COOKIE, self.transaction_id
            )
            digest = hmac.new(integrity_key, header + body, sha1).digest()
            body += _ATTRIBUTE.pack(MESSAGE_INTEGRITY, 20) + digest
        if fingerprint:
            header = _HEADER.pack(
                self.message_type, len(body) + _FINGERPRINT_SIZE, MAGIC_COOKIE, self.transaction_id
            )
            crc = zlib.crc32(header + body) ^ _FINGERPRINT_XOR
            body += _ATTRIBUTE.pack(FINGERPRINT, 4) + struct.pack("!I", crc)
        return _HEADER.pack(self.message_type, len(body), MAGIC_COOKIE, self.transaction_id) + body

    # -- reading attributes -------------------------------------------------------------

    def get(self, kind: int) -> bytes | None:
        """The first value of an attribute type, or None."""
        for found, value in self.attributes:
            if found == kind:
                return value
        return None

    def has(self, kind: int) -> bool:
        """Whether the message carries an attribute of this type."""
        return any(found == kind for found, _ in self.attributes)

    @property
    def username(self) -> str | None:
        """USERNAME, decoded (an ICE check's is ``receiver-ufrag:sender-ufrag``)."""
        value = self.get(USERNAME)
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def priority(self) -> int | None:
        """PRIORITY (RFC 8445 7.1.1), or None."""
        value = self.get(PRIORITY)
        return None if value is None or len(value) != 4 else int.from_bytes(value, "big")

    @property
    def error_code(self) -> int | None:
        """The ERROR-CODE number (class * 100 + number), or None."""
        value = self.get(ERROR_CODE)
        return None if value is None or len(value) < 4 else (value[2] & 7) * 100 + value[3]

    @property
    def xor_mapped_address(self) -> tuple[str, int] | None:
        """XOR-MAPPED-ADDRESS decoded, or None."""
        value = self.get(XOR_MAPPED_ADDRESS)
        if value is None or len(value) < 8:
            return None
        family, xport = value[1], int.from_bytes(value[2:4], "big")
        port = xport ^ (MAGIC_COOKIE >> 16)
        mask = MAGIC_COOKIE.to_bytes(4, "big") + self.transaction_id
        if family == 1 and len(value) == 8:
            raw = bytes(a ^ b for a, b in zip(value[4:8], mask, strict=False))
        elif family == 2 and len(value) == 20:
            raw = bytes(a ^ b for a, b in zip(value[4:20], mask, strict=True))
        else:
            return None
        return str(ipaddress.ip_address(raw)), port

    # -- writing attributes -------------------------------------------------------------

    def add(self, kind: int, value: bytes = b"") -> StunMessage:
        """Append an attribute; returns the message for chaining."""
        self.attributes.append((kind, value))
        return self

    def add_xor_mapped_address(self, address: tuple[str, int]) -> StunMessage:
        """Append XOR-MAPPED-ADDRESS for ``(host, port)`` (RFC 8489 14.2)."""
        host, port = address
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        mask = MAGIC_COOKIE.to_bytes(4, "big") + self.transaction_id
        packed = ip.packed
        xored = bytes(a ^ b for a, b in zip(packed, mask, strict=False))
        family = 1 if ip.version == 4 else 2
        xport = port ^ (MAGIC_COOKIE >> 16)
        return self.add(XOR_MAPPED_ADDRESS, struct.pack("!BBH", 0, family, xport) + xored)

    def add_error(self, code: int, reason: str) -> StunMessage:
        """Append ERROR-CODE (RFC 8489 14.8)."""
        value = struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode()
        return self.add(ERROR_CODE, value)


def _find(data: bytes, wanted: int) -> int | None:
    """The offset of the first attribute of type ``wanted`` in a well-formed message."""
    offset = _HEADER_SIZE
    while offset + 4 <= len(data):
        kind, size = _ATTRIBUTE.unpack_from(data, offset)
        if kind == wanted:
            return offset
        offset += 4 + size + (-size % 4)
    return None


def verify_integrity(data: bytes, key: bytes) -> bool:
    """Whether the MESSAGE-INTEGRITY of the raw message ``data`` is right for ``key``."""
    offset = _find(data, MESSAGE_INTEGRITY)
    if offset is None or offset + _INTEGRITY_SIZE > len(data):
        return False
    # The length field covers the message up to and including MESSAGE-INTEGRITY.
    length = offset + _INTEGRITY_SIZE - _HEADER_SIZE
    covered = data[:2] + struct.pack("!H", length) + data[4:offset]
    expected = hmac.new(key, covered, sha1).digest()
    return hmac.compare_digest(expected, data[offset + 4 : offset + _INTEGRITY_SIZE])


def verify_fingerprint(data: bytes) -> bool:
    """Whether the raw message ends with a right FINGERPRINT (RFC 8489 14.7)."""
    if len(data) < _HEADER_SIZE + _FINGERPRINT_SIZE:
        return False
    offset = len(data) - _FINGERPRINT_SIZE
    if _ATTRIBUTE.unpack_from(data, offset) != (FINGERPRINT, 4):
        return False
    crc = zlib.crc32(data[:offset]) ^ _FINGERPRINT_XOR
    return struct.pack("!I", crc) == data[offset + 4 :]
