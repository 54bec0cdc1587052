"""docs/configuration.md is what ``acd config-reference`` prints, and it covers every key.

The reference is generated from the schema (acd/config/_reference.py); a
schema change without ``acd config-reference > docs/configuration.md``
fails here, so the document cannot drift from what the engine accepts.
"""

from __future__ import annotations

import re
import subprocess
import sys

from acd.config._reference import _iter_keys, render_reference

from .conftest import ROOT

DOC = ROOT / "docs" / "configuration.md"


def test_the_document_is_the_generated_reference() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/configuration.md is out of date: run "
        "`.venv/bin/acd config-reference > docs/configuration.md`"
    )


def test_the_command_prints_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "acd.cli", "config-reference"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == render_reference()


def test_every_key_has_a_row_with_a_meaning() -> None:
    text = render_reference()
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]*(?:\\\|[^|]*)*) \| ([^|]*) \| (.*) \|$", text, re.M)
    described = {name for name, *_, meaning in rows if meaning.strip()}
    headings = set(re.findall(r"^#{2,3} `([^`]+)`$", text, re.M))
    for key in _iter_keys():
        leaf = key.rsplit(".", 1)[-1]
        section = {key, f"{key}[]", f"{key}.<name>"} & headings
        assert leaf in described or section, f"{key} has no row with a meaning, nor a section"
    assert not [name for name, *_, meaning in rows if not meaning.strip()]
