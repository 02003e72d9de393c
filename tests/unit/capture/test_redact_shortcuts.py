"""The redactor's shortcuts (number runs, digit counts, cheap substring gates) never change a finding.

``Redactor.find`` skips detectors that cannot match (a card needs a run of 13 digits, an SSN two
dashes in one run, an IPv4 three dots in one run); ``_resolve(text, found)`` with every built-in
detector's own spans is the same resolution without any shortcut. Both must agree on any text.
"""

from __future__ import annotations

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
