"""The C fast path of the RTP code, when it is built: ``fastrtp`` is the module or None.

``media/_fastrtp_src/`` is compiled by ``pip install`` when a C compiler and
the Python headers are there (setup.py); without them, or with the
environment variable ``ACD_MEDIA_PURE_PYTHON=1`` (for comparing the two, and
for the tests of the pure path), every stream runs on the pure-Python
reference implementations, which behave the same and cost about twenty
times more CPU per relayed packet.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["PURE_PYTHON_VARIABLE", "fastrtp"]

PURE_PYTHON_VARIABLE = "ACD_MEDIA_PURE_PYTHON"

fastrtp: ModuleType | None = None
if os.environ.get(PURE_PYTHON_VARIABLE, "").strip() in ("", "0"):
    try:
        from . import _fastrtp as fastrtp
    except ImportError:  # not built: no compiler or headers at install time
        fastrtp = None
