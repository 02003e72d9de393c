"""The redactor's shortcuts (number runs, digit counts, cheap substring gates) never change a finding.

``Redactor.find`` skips detectors that cannot match (a card needs a run of 13 digits, an SSN two
dashes in one run, an IPv4 three dots in one run); ``_resolve(text, found)`` with every built-in
detector's own spans is the same resolution without any shortcut. Both must agree on any text.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from slm_agents.capture.redact import DEFAULT_KINDS, Redactor

# Texts dense in what the numeric detectors look at: digits, their separators, +, (, @, letters.
PIECES = st.sampled_from([
    "0", "1", "4", "5", "9", " ", "-", ".", "(", ")", "+", "@", ":", "/", "a", "Z", "DE", "x.io",
    "4111 1111 1111 1111", "123-45-6789", "10.0.0.7", "+1 415 555 0123", "(555) 123-4567", "555-123-4567",
    "DE89 3704 0044 0532 0130 00", "fe80::1", "bob@example.com", "key=abc123XYZ789def", " and ", "\n",
    "\u0664\u0661\u0665", "\uff11\uff12\uff13",  # Arabic-Indic and fullwidth digits: \\d in the detectors
])
TEXTS = st.lists(PIECES, max_size=40).map("".join)


def _unshortcut(redactor: Redactor, text: str) -> tuple[tuple[int, int, str], ...]:
    found = {kind: list(finder(text)) for kind, finder in DEFAULT_KINDS.items()}
    return redactor._resolve(text, found)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_shortcuts_find_exactly_what_every_detector_finds(text: str) -> None:
    redactor = Redactor(cache_size=0)
    assert redactor._resolve(text, None) == _unshortcut(redactor, text)


def test_each_numeric_kind_is_still_found_next_to_others() -> None:
    text = ("card 4111-1111-1111-1111, ssn 123-45-6789, ip 192.168.1.20, call +44 20 7946 0958 or "
            "(555) 123-4567, mail ann@x.io, order A000123, 3 items at 9.99")
    kinds = [kind for _, _, kind in Redactor().find(text)]
    assert kinds == ["CARD", "SSN", "IP", "PHONE", "PHONE", "EMAIL"]
    assert Redactor()._resolve(text, None) == _unshortcut(Redactor(), text)


def test_short_number_runs_skip_the_numeric_detectors_but_keep_the_others() -> None:
    text = "order 12 of 345 shipped 2024-05 to bob@example.com, 7 left"
    assert [kind for _, _, kind in Redactor().find(text)] == ["EMAIL"]


def test_numeric_params_take_the_short_path_and_still_lose_credential_keys() -> None:
    from sqlite_utils import Database

    from slm_agents.capture import CaptureStore

    store = CaptureStore(Database(memory=True))
    plain = store.log({"messages": [{"role": "user", "content": "hi"}],
                       "params": {"temperature": 0.5, "max_tokens": 64, "seed": None, "api_key": 123456789012}})
    odd = store.log({"messages": [{"role": "user", "content": "hi"}],
                     "params": {"temperature": float("nan"), "stop": ["mail a@b.io"]}})
    assert store.flush()
    assert store.db["calls"].get(plain)["params"] == '{"temperature":0.5,"max_tokens":64,"seed":null}'
    assert store.db["calls"].get(odd)["params"] == '{"temperature":"nan","stop":["mail <EMAIL_1>"]}'
    store.close()


# -- the detectors' own gates: each one finds exactly what its plain regex finds --------------------------

# Texts dense in what the gates look at: "@" (e-mail windows), colons (IPv6), secret words in any case
# (also characters the case-insensitive regex folds: Kelvin sign, long s, dotted/dotless i), key prefixes.
GATE_PIECES = st.sampled_from([
    "a", "b.c", "x" * 70, "@", "@ex.io", "bob@example.com", ".", "-", "_", "+", " ", "\n", ":", "::", "fe80::1",
    "2001:db8:0:0:0:0:2:1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:", "192.0.2.7", "10:30", '": "', "{", "}", "0", "9", "KEY", "key", "Secret",
    "TOKEN", "Passw", "pWd", "\u212aey", "\u017fecret", "tok\u0130n", "\u0131", "through", "gh", "ghp_",
    "ghp_" + "a1" * 18, "sk-" + "b2" * 12, "AKIA" + "C3" * 8, "hf_" + "d4" * 16, "=",
    "gsk_" + "e5" * 20, "xai-" + "f6" * 20, "pplx-" + "g7" * 20, "r8_" + "h8" * 15, "npm_" + "i9" * 18,
    "pypi-" + "j0" * 25, "SG." + "k1" * 8 + "." + "l2" * 8, "dop_v1_" + "ab" * 32, "shpat_" + "cd" * 16, "shp", "SG",
    "+1 415 555 0123", "\u0664\u0661\u0665", "\uff11\uff12",
])
GATE_TEXTS = st.lists(GATE_PIECES, max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(GATE_TEXTS)
def test_gated_detectors_find_what_their_plain_regex_finds(text: str) -> None:
    import ipaddress

    from slm_agents.capture import redact

    assert list(redact._find_email(text)) == [m.span() for m in redact._EMAIL.finditer(text)]
    assert redact._has_secret_word(text) == (redact._SECRET_WORD.search(text) is not None)
    if redact._API_KEYS.search(text) is not None:
        assert redact._API_KEY_PREFIX.search(text) is not None
    # the gate is the prefix list, grouped by first character
    listed = [{"gh": "gh[pousr]_", "shp": "shp(?:at|ss|ca|pa)_"}.get(p, re.escape(p)) for p in redact._API_KEY_PREFIXES]
    assert (redact._API_KEY_PREFIX.search(text) is not None) == (re.search("|".join(listed), text) is not None)
    plain_ipv6 = []  # no gate at all: every match that is an address
    for m in redact._IPV6.finditer(text):
        if sum(c.isalnum() for c in m.group()) < 3:
            continue
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        plain_ipv6.append(m.span())
    assert list(redact._find_ipv6(text)) == plain_ipv6
    assert redact._count_digits(text) == len(re.findall(r"\d", text))
    for start, end, digits, _, _ in redact._number_runs(text):
        assert digits == len(re.findall(r"\d", text[start:end]))


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_phone_digit_count_is_the_detectors_count(text: str) -> None:
    from slm_agents.capture import redact

    def digits_ok(found: str) -> bool:
        digits = sum(c.isdigit() for c in found)
        # a national number (trunk prefix 0) has 9-12 digits, an international or US one 7-15
        return 9 <= digits <= 12 if found.startswith(("0", "(0")) else 7 <= digits <= 15

    expected = [m.span() for m in redact._PHONE.finditer(text) if digits_ok(m.group())]
    assert list(redact._find_phone(text)) == expected
