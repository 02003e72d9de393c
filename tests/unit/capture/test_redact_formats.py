"""Formats the first detectors missed: national phone numbers, US numbers and SSNs split by spaces,
addresses with accented or non-Latin letters, more providers' keys, short secrets under
secret-named keys; and version numbers shaped like IPv4 addresses.

Before: ``020 7946 0958`` (a UK number without +44), ``(11) 91234-5678``, ``138 0013 8000``,
``415 555 0132``, ``123 45 6789``, ``user@bücher.de``, ``gsk_…`` keys and ``{"password": "hunter2"}``
were stored as they are (recall 0.961 on the shipped set's 436 values), and
``AssemblyVersion 2.0.0.0`` became ``AssemblyVersion <IP_1>``.
"""

from __future__ import annotations

import pytest

from slm_agents.capture import Redactor
from slm_agents.capture.redact_check import check_labelled, load_labelled

#: The national numbers of the shipped labelled set (UK, France, Germany, Australia, Japan, Italy,
#: the Netherlands, Brazil, Mexico, China), written by bench/data/make_redact_labelled.py.
NATIONAL = [value for item in load_labelled() if item.id.startswith("national-")
            for kind, value in item.pii if kind == "PHONE"]

#: Numbers that start with 0 or look like versions, dates and codes: kept.
KEPT = [
    "AssemblyVersion 2.0.0.0", "FileVersion 10.0.0.1", "firmware v1.2.3.4 shipped", "ver. 4.3.2.1 of the SDK",
    "on 05-02-2025 10:30", "pages 0100-0120", "codes 01 02 03", "0,99 EUR", "INV-2024-000123", "order A000123",
    "ISBN 0-306-40615-2", "1.020 7946 0958", "build 0.12.3", "(2024) 1234-5678", "total 100 000 000 units",
    "(12) 34 items", "x138 0013 8000", "range 1999-2024",
]


@pytest.mark.parametrize("number", NATIONAL)
def test_a_national_number_is_a_phone_number(number: str) -> None:
    text, counts = Redactor().redact_text(f"Call me on {number} after six.")
    assert (text, counts) == ("Call me on <PHONE_1> after six.", {"PHONE": 1})


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_are_kept(text: str) -> None:
    assert Redactor().redact_text(text) == (text, {})


@pytest.mark.parametrize(("text", "redacted"), [
    ("dev box 10.0.0.5 is down", "dev box <IP_1> is down"),
    ("IPv4 198.51.100.7 blocked", "IPv4 <IP_1> blocked"),
    ("server 203.0.113.9 and version 1.2.3", "server <IP_1> and version 1.2.3"),
])
def test_an_address_after_another_word_is_still_an_address(text: str, redacted: str) -> None:
    assert Redactor().redact_text(text)[0] == redacted


def test_the_shipped_set_has_the_national_numbers() -> None:
    assert len(NATIONAL) == 17


def test_national_digit_counts_bound_the_match() -> None:
    # 8 digits is too short for a national number, 13 too long; 9 and 12 are the bounds
    assert Redactor().redact_text("0123 4567")[1] == {}
    assert Redactor().redact_text("0123 456789012")[1] == {}
    assert Redactor().redact_text("012 345 678")[1] == {"PHONE": 1}
    assert Redactor().redact_text("01234 5678901")[1] == {"PHONE": 1}


def test_the_new_formats_of_the_shipped_set_are_all_removed_through_the_store() -> None:
    items = [item for item in load_labelled() if item.id.startswith(("formats-", "national-"))]
    result = check_labelled(items)
    assert (result.items, result.removed, result.pii_values) == (39, 39, 39)
    assert result.misses == []


def test_their_look_alikes_are_kept_through_the_store() -> None:
    looks = ["sizes 150 300 4000", "year 2024 03 15", "shipping soon", "SG.1 was fine", "code 123-45 6789",
             "write to a_b@localhost", "order 987 65 4321 units"]
    items = [item for item in load_labelled() if item.negative and item.input in looks]
    result = check_labelled(items)
    assert (result.negatives, result.kept) == (7, 7)
