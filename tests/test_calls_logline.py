"""Masking of calling numbers in the log (acd/calls/_logline.py); the lines themselves are
read back from a real call in tests/test_acd_sipp.py."""

from __future__ import annotations

import pytest

from acd.calls._logline import mask_number
from acd.config import Config


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+441632960123", "*********0123"),
        ("0123456789", "******6789"),
        ("12345", "*2345"),
        ("1002", "1002"),  # an extension stays readable
        ("", ""),
        ("anonymous", "*****mous"),
    ],
)
def test_numbers_keep_their_last_four_characters(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_show_numbers_shows_them() -> None:
    assert mask_number("+441632960123", show=True) == "+441632960123"


def test_numbers_are_masked_unless_configured() -> None:
    assert Config().logging.show_numbers is False
    assert Config.model_validate({"logging": {"show_numbers": True}}).logging.show_numbers
