"""PII redaction: a labelled synthetic set (precision and recall), numbering, structure, config."""

from __future__ import annotations

import json
import random
import re
import string

import pytest

from slm_agents import hookimpl
from slm_agents.capture import CaptureStore, Redactor
from slm_agents.errors import InvalidRequest
from slm_agents.plugins import get_plugin_manager

from .conftest import msg

# -- a labelled synthetic set ---------------------------------------------------------------------


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def _group4(text: str) -> str:
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def positives(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, value) pairs, several formats each."""
    out: list[tuple[str, str]] = []
    names = ["ann", "bob.smith", "c_lee+tag", "d-ng", "eve99"]
    domains = ["example.com", "mail.example.org", "corp.co.uk", "uni.edu"]
    for _ in range(25):
        out.append(("EMAIL", f"{rng.choice(names)}{rng.randint(1, 999)}@{rng.choice(domains)}"))
    for _ in range(10):
        a, b, c = rng.randint(200, 999), rng.randint(200, 999), rng.randint(0, 9999)
        out += [("PHONE", f"({a}) {b}-{c:04d}"), ("PHONE", f"{a}-{b}-{c:04d}"),
                ("PHONE", f"+1 {a} {b} {c:04d}"), ("PHONE", f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}")]
    for _ in range(10):
        visa = _luhn_complete("4", 16, rng)
        master = _luhn_complete("5" + str(rng.randint(1, 5)), 16, rng)
        amex = _luhn_complete("37", 15, rng)
        out += [("CARD", visa), ("CARD", _group4(master)), ("CARD", "-".join(_group4(visa).split())), ("CARD", amex)]
    for _ in range(20):
        out.append(("SSN", f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"))
    for _ in range(8):
        de = _iban("DE", "".join(rng.choice(string.digits) for _ in range(18)))
        gb = _iban("GB", "WEST" + "".join(rng.choice(string.digits) for _ in range(14)))
        out += [("IBAN", de), ("IBAN", _group4(gb))]
    for _ in range(12):
        out.append(("IP", ".".join(str(rng.randint(1, 254)) for _ in range(4))))
    out += [("IP", "2001:db8::8a2e:370:7334"), ("IP", "fe80::1ff:fe23:4567:890a"),
            ("IP", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"), ("IP", "::ffff:192.0.2.128")]
    alnum = string.ascii_letters + string.digits
    for _ in range(5):
        rnd = lambda n: "".join(rng.choice(alnum) for _ in range(n))  # noqa: E731
        out += [
            ("API_KEY", "sk-proj-" + rnd(40)), ("API_KEY", "sk-" + rnd(48)),
            ("API_KEY", "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))),
            ("API_KEY", "ghp_" + rnd(36)), ("API_KEY", "xoxb-" + "-".join(rnd(12) for _ in range(3))),
            ("API_KEY", "AIza" + rnd(35)),
        ]
        out.append(("JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI" + rnd(20) + "." + rnd(43)))
    return out


TEMPLATES = [
    "Please contact me at {v} as soon as possible.",
    "my details: {v}",
    "{v}",
    "Customer wrote: 'use {v}, thanks'.",
    "Logged value={v} at step 3",
]

NEGATIVES = [
    "The meeting is on 2024-03-15 at 10:30.", "Version 1.2.3 fixed bug #4521.", "Order 12345678 shipped.",
    "Pi is 3.14159 and e is 2.71828.", "The total is $1,234.56 for 3 items.", "Use git commit a1b2c3d4e5.",
    "Call the function get_user_by_id(42).", "Room 221B, Baker Street.", "ISBN 978-3-16-148410-0 is a book.",
    "UUID 123e4567-e89b-12d3-a456-426614174000 identifies the run.", "The ratio was 16:9 on screen.",
    "Time 12:30:45 UTC.", "A 16-digit id 1234567812345678 that fails Luhn.", "Temperature -12.5 C",
    "Route 66 runs 2448 miles.", "It costs 19.99 EUR.", "See RFC 7231 section 6.5.1.", "pages 100-120",
    "Coordinates 48.8566, 2.3522.", "The year 1999 and 2000.", "sha256 e3b0c44298fc1c149afbf4c8996fb924",
    "Python 3.11.7 on linux.", "the key point is clarity", "a token of appreciation", "version 10.0.19045",
    "order A000123 never arrived", "std::vector<int> v;", "mac 00:1A:2B:3C:4D:5E", "Call me maybe.",
    "Invoice INV-2024-000123 paid.", "Meet at 5 pm; bring 2 chairs and 3 tables.",
]


def _spans(kind_value_pairs, rng):
    """Texts with the expected (start, end, kind) spans."""
    cases = []
    for kind, value in kind_value_pairs:
        template = rng.choice(TEMPLATES)
        start = template.index("{v}")
        text = template.replace("{v}", value)
        cases.append((text, [(start, start + len(value), kind)]))
    for text in NEGATIVES:
        cases.append((text, []))
    return cases


def test_precision_and_recall_on_a_labelled_synthetic_set(capsys):
    rng = random.Random(1234)
    cases = _spans(positives(rng), rng)
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7V\nq3X9Zk\n-----END RSA PRIVATE KEY-----"
    for i in range(5):
        token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32 + i))
        prefix = "Authorization: Bearer "
        cases.append((prefix + token, [(len(prefix), len(prefix) + len(token), "TOKEN")]))
        cases.append((f"key {i}:\n{pem}\nend", [(7, 7 + len(pem), "PRIVATE_KEY")]))
    redactor = Redactor()
    tp = fp = fn = 0
    per_kind: dict[str, list[int]] = {}
    misses = []
    for text, expected in cases:
        found = redactor.find(text)
        matched_found = set()
        for s, e, kind in expected:
            hit = next((i for i, (fs, fe, fk) in enumerate(found) if fk == kind and fs < e and s < fe), None)
            stats = per_kind.setdefault(kind, [0, 0])
            if hit is None:
                fn += 1
                stats[1] += 1
                misses.append(("missed", kind, text))
            else:
                tp += 1
                stats[0] += 1
                matched_found.add(hit)
        for i, (fs, fe, fk) in enumerate(found):
            if i not in matched_found:
                fp += 1
                misses.append(("false positive", fk, text[fs:fe]))
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    with capsys.disabled():
        print(f"\nredaction on {len(cases)} labelled texts: precision {precision:.3f}, recall {recall:.3f} "
              f"(tp={tp} fp={fp} fn={fn}); per kind (found/missed): "
              + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(per_kind.items())))
    assert precision >= 0.98, misses
    assert recall >= 0.99, misses


def test_placeholders_are_numbered_consistently_within_a_call():
    session = Redactor().session()
    first = session.text("from ann@example.com to bob@example.com")
    second = session.text("reply to ann@example.com, cc 10.1.2.3")
    assert first == "from <EMAIL_1> to <EMAIL_2>"
    assert second == "reply to <EMAIL_1>, cc <IP_1>"
    assert session.counts == {"EMAIL": 3, "IP": 1}
    assert Redactor().session().text("bob@example.com") == "<EMAIL_1>"  # a new call starts again


def test_every_part_of_a_record_is_redacted(mem_store):
    email, card = "jane.doe@example.com", "4111 1111 1111 1111"
    cid = mem_store.log({
        "messages": [
            {"role": "system", "content": "You help."},
            {"role": "user", "content": [{"type": "text", "text": f"I am {email}"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "charge", "arguments": json.dumps({"card": card, "email": email})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"charged {card}"},
        ],
        "content": f"Done, receipt sent to {email}",
        "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "notify", "arguments": {"to": email}}}],
        "error_message": f"retry for {email}",
        "metadata": {"user": email, "api_key": "plainlookingvalue123"},
    })
    tool = mem_store.log_tool({"call_id": "c1", "name": "charge", "arguments": {"card": card},
                               "result": f"ok {card}", "error_message": None})
    assert mem_store.flush()
    row = mem_store.db["calls"].get(cid)
    whole = json.dumps(row)
    assert email not in whole and card not in whole and "plainlookingvalue123" not in whole
    messages = json.loads(row["messages"])
    assert messages[1]["content"][0]["text"] == "I am <EMAIL_1>"
    assert messages[1]["content"][1]["image_url"]["url"] == "data:image/png;base64,AAAA"
    args = json.loads(messages[2]["tool_calls"][0]["function"]["arguments"])
    assert args == {"card": "<CARD_1>", "email": "<EMAIL_1>"}  # parsed, redacted, re-encoded
    assert messages[3]["content"] == "charged <CARD_1>"
    assert row["content"] == "Done, receipt sent to <EMAIL_1>"
    assert row["redactions"] == 9  # 4 in messages, content, tool_calls, error_message, 2 in metadata
    t = mem_store.db["tool_executions"].get(tool)
    assert card not in json.dumps(t) and t["redactions"] == 2


def test_redaction_off_stores_text_as_given():
    from sqlite_utils import Database

    with CaptureStore(Database(memory=True), redactor=None) as store:
        cid = store.log({"messages": msg("mail ann@example.com")})
        store.flush()
        row = store.db["calls"].get(cid)
    assert "ann@example.com" in row["messages"] and row["redactions"] == 0
    assert Redactor.off().redact_text("ann@example.com") == ("ann@example.com", {})


def test_custom_patterns_callables_and_kind_selection():
    def employee_ids(text):
        return [m.span() for m in re.finditer(r"\bE\d{6}\b", text)]

    r = Redactor(kinds=["EMAIL"], patterns={"EMPLOYEE_ID": employee_ids, "ticket": r"TCK-\d+"})
    text, counts = r.redact_text("E123456 filed TCK-77 from ann@example.com at 10.0.0.1")
    assert text == "<EMPLOYEE_ID_1> filed <TICKET_1> from <EMAIL_1> at 10.0.0.1"
    assert counts == {"EMPLOYEE_ID": 1, "TICKET": 1, "EMAIL": 1}
    with pytest.raises(InvalidRequest):
        Redactor(kinds=["NOPE"])
    with pytest.raises(InvalidRequest):
        Redactor(patterns={"bad name!": r"x"})


def test_a_broken_custom_detector_does_not_break_redaction():
    def broken(text):
        raise RuntimeError("boom")

    r = Redactor(patterns={"BROKEN": broken})
    assert r.redact_text("ann@example.com")[0] == "<EMAIL_1>"


class _Plugin:
    @hookimpl
    def register_redactors(self, register):
        register("CASE_NUMBER", re.compile(r"\bCASE-\d{4}\b"))


def test_plugin_hook_adds_redactors():
    pm = get_plugin_manager()
    plugin = _Plugin()
    pm.register(plugin, name="test-case-number-redactor")
    try:
        assert "CASE_NUMBER" in Redactor.default().kinds
        assert Redactor.default().redact_text("see CASE-1234")[0] == "see <CASE_NUMBER_1>"
        assert "CASE_NUMBER" not in Redactor().kinds  # plugins only when asked (default() does)
    finally:
        pm.unregister(plugin)
