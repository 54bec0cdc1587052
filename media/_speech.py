"""Numbers, ordinals, digits and durations as lists of English word prompts.

A contact centre says "you are number three in the queue" and "your expected
wait is four minutes" from a few dozen pre-rendered words rather than a TTS
engine at call time. Each function here returns the names of those word
prompts, in order; the prompt library maps the names to files (the defaults
are rendered by ``acd prompts build``). US style: 1999 is "one thousand nine
hundred ninety nine", with no "and".
"""

from __future__ import annotations

__all__ = [
    "DIGIT_NAMES",
    "NUMBER_WORDS",
    "ORDINAL_WORDS",
    "digit_words",
    "duration_words",
    "number_words",
    "ordinal_words",
]

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand"))

NUMBER_WORDS: tuple[str, ...] = (
    *_ONES,
    *_TENS[2:],
    "hundred",
    "thousand",
    "million",
    "billion",
)
"""Every word :func:`number_words` can produce."""

_ORDINAL_OF = {
    "zero": "zeroth",
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

ORDINAL_WORDS: tuple[str, ...] = tuple(
    _ORDINAL_OF.get(word, word[:-1] + "ieth" if word.endswith("y") else word + "th")
    for word in NUMBER_WORDS
)
"""Every ordinal word :func:`ordinal_words` can end with ('third', 'twentieth', ...)."""

_ORDINAL = dict(zip(NUMBER_WORDS, ORDINAL_WORDS, strict=True))

DIGIT_NAMES = {**{str(d): _ONES[d] for d in range(10)}, "*": "star", "#": "pound"}
"""The word prompt for each key a caller can press (A-D have no spoken form)."""

_LIMIT = 1_000_000_000_000


def _below_thousand(value: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(value, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def _parse(value: int | str) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise ValueError(f"{value!r} is not a whole number")
        value = int(text)
    if not 0 <= value < _LIMIT:
        raise ValueError(f"{value} is outside 0 to {_LIMIT - 1}")
    return value


def number_words(value: int | str) -> list[str]:
    """``42`` -> ``['forty', 'two']``; ``1999`` -> one thousand nine hundred ninety nine."""
    number = _parse(value)
    if number == 0:
        return ["zero"]
    words: list[str] = []
    for scale, name in _SCALES:
        count, number = divmod(number, scale)
        if count:
            words += [*_below_thousand(count), name]
    return words + _below_thousand(number)


def ordinal_words(value: int | str) -> list[str]:
    """``3`` -> ``['third']``; ``21`` -> ``['twenty', 'first']``; ``100`` -> one hundredth."""
    words = number_words(value)
    words[-1] = _ORDINAL[words[-1]]
    return words


def digit_words(digits: str) -> list[str]:
    """Each key said on its own: ``'4#'`` -> ``['four', 'pound']``; spaces are ignored."""
    words: list[str] = []
    for digit in digits:
        if digit in " -":
            continue
        try:
            words.append(DIGIT_NAMES[digit])
        except KeyError:
            raise ValueError(f"{digit!r} in {digits!r} has no spoken form") from None
    return words


def duration_words(seconds: float) -> list[str]:
    """A wait as minutes and seconds, rounded to the second: 150 -> two minutes thirty seconds.

    Under a minute says only seconds; whole minutes say only minutes; one of
    either takes the singular ('minute', 'second').
    """
    if seconds < 0:
        raise ValueError(f"duration {seconds} is negative")
    minutes, rest = divmod(round(seconds), 60)
    words: list[str] = []
    if minutes:
        words += [*number_words(minutes), "minute" if minutes == 1 else "minutes"]
    if rest or not minutes:
        words += [*number_words(rest), "second" if rest == 1 else "seconds"]
    return words
