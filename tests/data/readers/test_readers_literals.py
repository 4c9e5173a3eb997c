import math

import pytest

from almea_pyg.data.readers.literals import lexical_form, literal_value, parse_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.70404945", 9.70404945),
        ("2837021.0", 2837021.0),
        ("-3", -3.0),
        ("1.5e+03", 1500.0),
        ("4.2e-05", 4.2e-05),
        ("1982", 1982.0),  # gYear
        ("1982-01-01", 1982.0),
        ("1982-05-03", 1982 + 4 / 12 + 2 / 372),
        ("1982-5-3", 1982 + 4 / 12 + 2 / 372),
        ("1982-12-31", 1982 + 11 / 12 + 30 / 372),
        ("1982-05", 1982 + 4 / 12),
        ("1982-05-03T10:00:00", 1982 + 4 / 12 + 2 / 372),
        ("1947-##-##", 1947.0),  # YAGO: unknown month and day
        ("1947-03-##", 1947 + 2 / 12),
        ("879-##-##", 879.0),
        ("-0044-03-15", -44 + 2 / 12 + 14 / 372),
    ],
)
def test_parse_value(text, expected):
    assert parse_value(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["194#-##-##", "19##-##-##", "Bobby", "", "1982-13-01", "1982-02-32", "inf"]
)
def test_parse_value_nan(text):
    assert math.isnan(parse_value(text))


def test_dates_are_monotone():
    dates = ["1999-12-31", "2000-01-01", "2000-01-31", "2000-02-01", "2000-12-31"]
    values = [parse_value(d) for d in dates]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(2000 <= v < 2001 for v in values[1:])


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ('"1982"^^<http://www.w3.org/2001/XMLSchema#gYear>', "1982"),
        ('"194#-##-##"^^<http://www.w3.org/2001/XMLSchema#date>', "194#-##-##"),
        ('"a "quoted" text"@en', 'a "quoted" text'),
        ('"plain"', "plain"),
        ("1.85", "1.85"),
        ('"unterminated', None),
        ('"x"^^', None),
        ("two tokens", None),
    ],
)
def test_lexical_form(literal, expected):
    assert lexical_form(literal) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1982", 1982.0),
        ('"1982"^^<http://www.w3.org/2001/XMLSchema#gYear>', 1982.0),
        ('"1.85"^^xsd:double', 1.85),
        (' "1982-05" ', 1982 + 4 / 12),
        ('"Rome"@it', math.nan),
        ("Can we fix it?", math.nan),
        ("", math.nan),
    ],
)
def test_literal_value(text, expected):
    assert literal_value(text) == pytest.approx(expected, nan_ok=True)
