"""Asterisk-style dial patterns, as written in the ``match`` of a route.

A pattern starts with ``_``; after it every character stands for one dialled
character:

- ``X`` any digit 0-9, ``Z`` 1-9, ``N`` 2-9 (either case);
- ``[...]`` one character from a class such as ``[1-5]`` or ``[0-35#]``;
- ``0``-``9``, ``*``, ``#`` and ``+`` stand for themselves;
- a trailing ``.`` matches one or more further characters, a trailing ``!``
  zero or more.

Anything else is rejected, so that a typo in a pattern is caught when the
configuration is loaded rather than when a call fails to route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DialPattern"]

_WILDCARDS = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}
_LITERALS = frozenset("0123456789*#+")
_CLASS_MEMBERS = frozenset("0123456789*#+")
_TAILS = {".": ".+", "!": ".*"}


@dataclass(frozen=True, slots=True)
class DialPattern:
    """A compiled dial pattern; ``parse`` raises ``ValueError`` saying what is wrong."""

    text: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> DialPattern:
        if not text.startswith("_"):
            raise ValueError(f"a dial pattern starts with '_', got {text!r}")
        body = text[1:]
        if not body:
            raise ValueError("a dial pattern needs at least one character after '_'")
        parts: list[str] = []
        i = 0
        while i < len(body):
            char = body[i]
            position = i + 1  # counted from the '_' so the operator can find it
            if char.upper() in _WILDCARDS:
                parts.append(_WILDCARDS[char.upper()])
            elif char in _LITERALS:
                parts.append(re.escape(char))
            elif char == "[":
                end = body.find("]", i + 1)
                if end < 0:
                    raise ValueError(f"unclosed '[' at position {position} of {text!r}")
                parts.append(_compile_class(body[i + 1 : end], text))
                i = end
            elif char in _TAILS:
                if i != len(body) - 1:
                    raise ValueError(
                        f"{char!r} may only end a dial pattern (position {position} of {text!r})"
                    )
                if not parts:
                    raise ValueError(f"{text!r} needs at least one digit before {char!r}")
                parts.append(_TAILS[char])
            else:
                raise ValueError(f"unexpected {char!r} at position {position} of {text!r}")
            i += 1
        return cls(text=text, regex=re.compile("".join(parts)))

    def matches(self, number: str) -> bool:
        """True when the whole of ``number`` fits the pattern."""
        return self.regex.fullmatch(number) is not None


def _compile_class(members: str, text: str) -> str:
    """Translate the inside of ``[...]`` to a regex character class."""
    if not members:
        raise ValueError(f"empty '[]' in {text!r}")
    out: list[str] = []
    i = 0
    while i < len(members):
        char = members[i]
        if char not in _CLASS_MEMBERS:
            raise ValueError(f"unexpected {char!r} inside '[{members}]' in {text!r}")
        if i + 2 < len(members) and members[i + 1] == "-":
            last = members[i + 2]
            if not (char.isdigit() and last.isdigit() and char <= last):
                raise ValueError(f"bad range '{char}-{last}' in {text!r}")
            out.append(f"{char}-{last}")
            i += 3
        else:
            out.append(re.escape(char))
            i += 1
    return "[" + "".join(out) + "]"
