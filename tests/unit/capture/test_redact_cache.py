"""The redactor's findings cache: bounded, exact, forgotten when the detectors change, and free of found PII."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from slm_agents.capture import Redactor, redact

PIECES = st.sampled_from([
    "order A000123 ", "mail bob@example.com ", "call +1 415 555 0123 ", "card 4111 1111 1111 1111 ",
    "ip 10.0.0.7 ", "key=abc123XYZ789def ", "hello ", "\u00e9t\u00e9 ", "\ud800", "{", '"name": ', "}",
])
TEXTS = st.lists(PIECES, min_size=1, max_size=12).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=8))
def test_cached_findings_and_redacted_text_equal_the_uncached_ones(texts: list[str]) -> None:
    cached, uncached = Redactor(cache_size=4), Redactor(cache_size=0)
    for _ in range(2):  # the second round is answered from the cache (what still fits in it)
        for text in texts:
            assert cached.find(text) == uncached.find(text)
        session, plain = cached.session(), uncached.session()
        assert [session.text(t) for t in texts] == [plain.text(t) for t in texts]
        assert session.counts == plain.counts
    assert not uncached._cache


def test_the_cache_is_bounded_in_entries_and_in_characters(monkeypatch) -> None:
    r = Redactor(cache_size=5)
    for i in range(50):
        r.find(f"nothing to hide in text number {i}")
        r.find(f"write to user{i}@example.com please")
    assert len(r._cache) == 5
    monkeypatch.setattr(redact, "_CACHE_MAX_CHARS", 100)
    r = Redactor(cache_size=1000)
    for i in range(50):
        r.find(f"nothing to hide in text number {i:04d}")  # 35 characters each
    kept = [key for key in r._cache if isinstance(key, str)]
    # two fit in 100 characters: the newest are kept, the oldest go first
    assert kept == ["nothing to hide in text number 0048", "nothing to hide in text number 0049"]
    assert r._cache_chars == 70


def test_a_text_with_findings_is_remembered_by_digest_only() -> None:
    r = Redactor()
    secret = "Jane Roe, jane.roe@example.com, +1 415 555 0123, card 4111 1111 1111 1111"
    plain = "The order ships on Monday; nothing personal in here."
    assert r.find(secret) and not r.find(plain)
    assert plain in r._cache  # stored as it is anyway: nothing was found in it
    assert not any(isinstance(key, str) and "example.com" in key for key in r._cache)
    assert r._cache[hashlib.blake2b(secret.encode(), digest_size=16, key=r._cache_key).digest()] == r.find(secret)
    assert Redactor()._cache_key != r._cache_key  # keyed: the digest of a guess cannot be checked without it
    r.clear_cache()
    assert not r._cache and r._cache_chars == 0


def test_adding_a_detector_forgets_what_the_old_detectors_found() -> None:
    r = Redactor()
    text = "employee E123456 asked about order A000123"
    assert r.find(text) == ()
    r.add("EMPLOYEE_ID", r"\bE\d{6}\b")
    assert r.find(text) == ((9, 16, "EMPLOYEE_ID"),)
    assert r.redact_text(text)[0] == "employee <EMPLOYEE_ID_1> asked about order A000123"


def test_cache_size_zero_remembers_nothing() -> None:
    r = Redactor(cache_size=0)
    assert r.find("mail bob@example.com now") == ((5, 20, "EMAIL"),)
    assert r.find("nothing here at all, really") == ()
    assert not r._cache and r._cache_chars == 0


def test_a_long_text_is_not_remembered() -> None:
    r = Redactor()
    text = "a@b.io " + "x" * redact._CACHE_MAX_TEXT
    assert r.find(text) == ((0, 6, "EMAIL"),)
    assert not r._cache


def test_closing_a_store_forgets_the_redactors_cache(tmp_path) -> None:
    from slm_agents.capture import CaptureStore

    redactor = Redactor()
    store = CaptureStore(tmp_path / "c.db", redactor=redactor)
    store.log({"messages": [{"role": "user", "content": "nothing personal in this message"}]})
    assert store.flush()
    assert redactor._cache
    store.close()
    assert not redactor._cache
