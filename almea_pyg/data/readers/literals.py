"""Literal values of attribute facts: numbers, years and dates as floats.

Attribute values feed numeric features, so every literal becomes one float:

* numbers (``"9.70404945"``, ``"2837021.0"``, ``"1.2e+09"``) and years
  (``gYear``, ``"1982"``) parse as they read;
* dates ``YYYY-MM-DD`` (also ``YYYY-M-D``, ``YYYY-MM`` and a trailing time) become
  a year fraction ``year + (month - 1) / 12 + (day - 1) / 372``: monotone in the
  date and inside ``[year, year + 1)``;
* YAGO writes unknown digits as ``#``: an unknown day or month keeps the known
  part (``"1947-##-##"`` -> ``1947.0``, ``"1947-03-##"`` -> ``1947 + 2/12``), an
  unknown digit in the year gives NaN (``"194#-##-##"``: the decade is known, the
  year is not, and guessing one would invent a value);
* anything else (text, malformed dates) is NaN: the fact still exists, it has no
  number.
"""

from __future__ import annotations

import math
import re

_NAN = float("nan")
_DATE = re.compile(
    r"^(?P<sign>-?)(?P<year>[0-9#]{1,4})-(?P<month>[0-9#]{1,2})"
    r"(?:-(?P<day>[0-9#]{1,2}))?(?:T.*)?$"
)
_TYPED = re.compile(r'^"(?P<lexical>.*)"(?:\^\^<[^>]*>|\^\^\S+|@[A-Za-z0-9-]+)?$')


def parse_value(text: str) -> float:
    """The float a literal's lexical form stands for (NaN if none); see module doc."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return _parse_date(text)
    return value if math.isfinite(value) else _NAN


def _parse_date(text: str) -> float:
    match = _DATE.match(text)
    if match is None or "#" in match["year"]:
        return _NAN
    year = float(match["year"])
    if match["sign"]:
        year = -year
    month, day = match["month"], match["day"]
    if "#" in month:
        return year
    if not 1 <= int(month) <= 12:
        return _NAN
    year += (int(month) - 1) / 12
    if day is None or "#" in day:
        return year
    if not 1 <= int(day) <= 31:
        return _NAN
    return year + (int(day) - 1) / 372


def lexical_form(literal: str) -> str | None:
    """The lexical form of an N-Triples literal, ``None`` if ``literal`` is not one.

    ``'"1982"^^<http://www.w3.org/2001/XMLSchema#gYear>'`` -> ``'1982'``; a bare
    token (``1982``) is returned unchanged.
    """
    if not literal.startswith('"'):
        return literal if literal and " " not in literal else None
    match = _TYPED.match(literal)
    return None if match is None else match["lexical"]


def literal_value(text: str) -> float:
    """:func:`parse_value` of a literal written bare (``1982``) or in N-Triples
    form (``"1982"^^<...#gYear>``, ``"Rome"@en``)."""
    lexical = lexical_form(text.strip())
    return parse_value(text if lexical is None else lexical)
