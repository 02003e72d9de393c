"""Write ``slm_agents/capture/data/redact_labelled.jsonl``: the labelled set of ``slm-agents redact-check --labelled``.

Synthetic, written for this project (no real person's data). Each line is one item (format in
:mod:`slm_agents.capture.redact_check`): ``input`` placed at ``where`` in a captured record, and the
``pii`` values that must not survive, with their kind; an item without ``pii`` is a hard negative
that must be stored unchanged. Sources:

* ``unit``: the labelled synthetic set of tests/unit/capture/test_redact.py (every kind, several
  formats each, in five sentence templates) and its negatives, spread over the record's text parts;
* ``gaps``: the token and argument cases of tests/unit/capture/test_redact_gaps.py (JWS whose
  payload is not base64 JSON, ``alg: none`` JWTs, PII under the keys ``name``/``id``/``type``/...)
  and its hard negatives;
* ``keys``: PII under each envelope key name (``name``, ``id``, ``type``, ``index``, ``role``,
  ``tool_call_id``, ``finish_reason``) inside tool arguments, tool results, metadata, params and
  escalation/label extras, flat, nested and in lists;
* ``params``: credentials in ``params`` (``Authorization: Bearer``, API keys, cookies, tokens in URLs);
* ``data``: text that starts with ``data:`` but is not a base64 data URL;
* ``tokens``: more JWT shapes and places;
* ``places``: PII in the other parts of a record (tags, error text, long messages kept as blobs);
* ``neg``: hard negatives that look close: versions, hashes, dates, UUIDs, prices, real base64
  ``data:`` URLs, JWT-looking non-tokens, the envelope's own structure.

The labels say what a person would want hidden, whatever the detectors do today; no item was
chosen or dropped because of what the redactor does with it. Rebuilt the same way every time
(fixed seeds): ``python bench/data/make_redact_labelled.py``.
"""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "slm_agents" / "capture" / "data" / "redact_labelled.jsonl"
ALNUM = string.ascii_letters + string.digits
STRING_PLACES = ["message", "answer", "tool_result", "content_part", "error", "tool_message"]
ENVELOPE_KEYS = ["name", "id", "type", "index", "role", "tool_call_id", "finish_reason"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable: one check digit always completes a Luhn number")


def iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def group4(text: str) -> str:
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def rnd(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


class Items:
    """Collects items; ids are ``<source>-<n>``."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._counts: dict[str, int] = {}

    def add(self, source: str, where: str, value: Any, *pii: tuple[str, str]) -> None:
        n = self._counts[source] = self._counts.get(source, 0) + 1
        row: dict[str, Any] = {"id": f"{source}-{n:03d}", "where": where, "input": value,
                               "pii": [{"kind": k, "value": v} for k, v in pii]}
        self.rows.append(row)


def extras_safe(where: str, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as escalation extras: under ``detail`` (``id`` and ``reason`` are the row's own columns)."""
    return {"detail": obj} if where == "escalation" else obj


# -- unit: tests/unit/capture/test_redact.py ----------------------------------------------------------

TEMPLATES = [
    "Please contact me at {v} as soon as possible.",
    "my details: {v}",
    "{v}",
    "Customer wrote: 'use {v}, thanks'.",
    "Logged value={v} at step 3",
]

UNIT_NEGATIVES = [
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


def unit_positives(rng: random.Random) -> list[tuple[str, str]]:
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
        visa = luhn_complete("4", 16, rng)
        master = luhn_complete("5" + str(rng.randint(1, 5)), 16, rng)
        amex = luhn_complete("37", 15, rng)
        out += [("CARD", visa), ("CARD", group4(master)), ("CARD", "-".join(group4(visa).split())), ("CARD", amex)]
    for _ in range(20):
        out.append(("SSN", f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"))
    for _ in range(8):
        de = iban("DE", rnd(rng, 18, string.digits))
        gb = iban("GB", "WEST" + rnd(rng, 14, string.digits))
        out += [("IBAN", de), ("IBAN", group4(gb))]
    for _ in range(12):
        out.append(("IP", ".".join(str(rng.randint(1, 254)) for _ in range(4))))
    out += [("IP", "2001:db8::8a2e:370:7334"), ("IP", "fe80::1ff:fe23:4567:890a"),
            ("IP", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"), ("IP", "::ffff:192.0.2.128")]
    for _ in range(5):
        out += [
            ("API_KEY", "sk-proj-" + rnd(rng, 40)), ("API_KEY", "sk-" + rnd(rng, 48)),
            ("API_KEY", "AKIA" + rnd(rng, 16, string.ascii_uppercase + string.digits)),
            ("API_KEY", "ghp_" + rnd(rng, 36)), ("API_KEY", "xoxb-" + "-".join(rnd(rng, 12) for _ in range(3))),
            ("API_KEY", "AIza" + rnd(rng, 35)),
        ]
        out.append(("JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI" + rnd(rng, 20) + "." + rnd(rng, 43)))
    return out


def place_text(items: Items, source: str, where: str, text: str, *pii: tuple[str, str]) -> None:
    """A text at a string place, or as the value of an ordinary key in an object place."""
    if where in ("tool_arguments", "tool_call", "history_tool_call", "metadata", "escalation", "label"):
        items.add(source, where, {"note": text}, *pii)
    else:
        items.add(source, where, text, *pii)


def unit(items: Items) -> None:
    rng = random.Random(1234)
    places = [*STRING_PLACES, "tool_call", "metadata"]
    for i, (kind, value) in enumerate(unit_positives(rng)):
        text = rng.choice(TEMPLATES).replace("{v}", value)
        place_text(items, "unit", places[i % len(places)], text, (kind, value))
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7V\nq3X9Zk\n-----END RSA PRIVATE KEY-----"
    for i in range(5):
        token = rnd(rng, 32 + i)
        place_text(items, "unit", places[i], "Authorization: Bearer " + token, ("TOKEN", token))
        place_text(items, "unit", places[i + 3], f"key {i}:\n{pem}\nend", ("PRIVATE_KEY", pem))
    for i, text in enumerate(UNIT_NEGATIVES):
        place_text(items, "unit-neg", places[i % len(places)], text)


# -- gaps: tests/unit/capture/test_redact_gaps.py -----------------------------------------------------

GAPS_NEGATIVES = [
    "data:image/png;base64,iVBORw0KGgo=", "eyJ is how base64 JSON starts", "see a.b.c for details",
    "version eyJ1.2.3", "the payload was eyJhbGciOiJIUzI1NiJ9 alone", "a.b. c.d.",
    "file name.tar.gz and x.y.z", "tokenize the text", "name: Jane", '{"id": "c1", "type": "function"}',
    "Bearer of good news", "alg none is insecure", "data: not a url", "id 12345 type 7",
]


def gaps(items: Items) -> None:
    rng = random.Random(13)
    object_places = ["tool_arguments", "tool_call", "history_tool_call", "tool_result", "tool_message", "metadata",
                     "escalation", "label"]
    for i in range(20):
        r = rnd(rng, 24)
        header = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256", "none"])}).encode())
        jws = f"{header}.{b64url(r.encode())}.{b64url(r[::-1].encode())}"
        unsigned = f"{header}.{b64url(json.dumps({'sub': r}).encode())}."
        place_text(items, "gaps", STRING_PLACES[i % 6], f"jws {jws} end", ("JWT", jws))
        place_text(items, "gaps", STRING_PLACES[(i + 3) % 6], f"unsigned {unsigned} end", ("JWT", unsigned))
        user = f"user{rng.randint(1, 999)}@example.org"
        key = rng.choice(ENVELOPE_KEYS)
        place = object_places[i % len(object_places)]
        items.add("gaps", place, extras_safe(place, {key: f"Jane Roe <{user}>"}), ("EMAIL", user))
    for i, text in enumerate(GAPS_NEGATIVES):
        items.add("gaps-neg", STRING_PLACES[i % 6], text)
    # the fixed cases of the gap tests
    pii = "Jane Roe <jane@x.com>"
    items.add("gaps", "history_tool_call", {"name": pii, "id": "jane@x.com", "type": "jane@x.com"},
              ("EMAIL", "jane@x.com"))
    items.add("gaps", "tool_message", {"name": pii}, ("EMAIL", "jane@x.com"))
    items.add("gaps", "tool_call", {"name": pii}, ("EMAIL", "jane@x.com"))
    items.add("gaps", "metadata", {"name": pii, "role": "jane@x.com", "finish_reason": "jane@x.com",
                                   "index": "jane@x.com"}, ("EMAIL", "jane@x.com"))
    items.add("gaps", "tool_arguments", {"name": pii, "index": "jane@x.com"}, ("EMAIL", "jane@x.com"))
    items.add("gaps", "tool_result", {"name": pii, "tool_call_id": "jane@x.com"}, ("EMAIL", "jane@x.com"))
    items.add("gaps", "content_part", "data: contact jane@x.com now", ("EMAIL", "jane@x.com"))
    items.add("gaps", "escalation", {"note": "user jane@x.com", "detail": {"name": pii}}, ("EMAIL", "jane@x.com"))
    items.add("gaps", "label", {"reviewer": "jane@x.com", "context": {"name": pii}}, ("EMAIL", "jane@x.com"))
    token = "abcdefghijklmnopqrstuvwxyz0123"
    items.add("gaps", "params", {"temperature": 0.1, "extra_headers": {
        "Authorization": f"Bearer {token}", "X-Api-Key": "secret123", "Cookie": "sid=1", "X-Auth-Token": "t0k3n-value",
        "access_token": "tok-abc", "X-Request-Id": "r1"}, "user": "jane@x.com"},
        ("TOKEN", token), ("API_KEY", "secret123"), ("TOKEN", "t0k3n-value"), ("TOKEN", "tok-abc"),
        ("EMAIL", "jane@x.com"))
    items.add("gaps", "tags", ["jane@x.com"], ("EMAIL", "jane@x.com"))


# -- keys: PII under the envelope's key names, off the envelope ----------------------------------------


def keys(items: Items) -> None:
    rng = random.Random(7)
    places = ["tool_arguments", "tool_call", "history_tool_call", "tool_result", "tool_message", "metadata",
              "escalation", "label", "params"]

    def pii_value(i: int) -> tuple[str, str, str]:
        """(kind, value, text holding it)."""
        choice = i % 7
        if choice == 0:
            email = f"{rnd(rng, 6, string.ascii_lowercase)}.{rnd(rng, 5, string.ascii_lowercase)}@example.net"
            return "EMAIL", email, f"Sam Park <{email}>"
        if choice == 1:
            phone = f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
            return "PHONE", phone, phone
        if choice == 2:
            card = luhn_complete("4", 16, rng)
            return "CARD", card, card
        if choice == 3:
            ip = f"203.0.113.{rng.randint(1, 254)}"
            return "IP", ip, f"client {ip}"
        if choice == 4:
            ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
            return "SSN", ssn, ssn
        if choice == 5:
            value = iban("FR", rnd(rng, 23, string.digits))
            return "IBAN", value, value
        key = "sk-" + rnd(rng, 40)
        return "API_KEY", key, key

    i = 0
    for key in ENVELOPE_KEYS:
        for place in places:
            kind, value, text = pii_value(i)
            shape = i % 3
            if shape == 0:
                obj: dict[str, Any] = {key: text}
            elif shape == 1:
                obj = {"customer": {key: text, "plan": "pro"}}
            else:
                obj = {"items": [{key: text}, {key: 2}]}
            items.add("keys", place, extras_safe(place, obj), (kind, value))
            i += 1


# -- params: credentials sent with the request ---------------------------------------------------------


def params(items: Items) -> None:
    rng = random.Random(21)
    for header in ("Authorization", "authorization", "Proxy-Authorization"):
        token = rnd(rng, 40)
        items.add("params", "params", {"extra_headers": {header: f"Bearer {token}", "X-Trace": "t-1"}},
                  ("TOKEN", token))
    jwt = (b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "."
           + b64url(json.dumps({"sub": "u-981", "exp": 1767225600}).encode()) + "." + rnd(rng, 86))
    items.add("params", "params", {"default_headers": {"Authorization": f"Bearer {jwt}"}}, ("JWT", jwt))
    items.add("params", "params", {"client": {"headers": {"authorization": "Bearer " + (t := rnd(rng, 32))}}},
              ("TOKEN", t))
    items.add("params", "params", {"extra_headers": {"X-Api-Key": (k := "sk-proj-" + rnd(rng, 40))}}, ("API_KEY", k))
    items.add("params", "params", {"api_key": (k := rnd(rng, 32)), "model": "gpt-4o-mini"}, ("API_KEY", k))
    items.add("params", "params", {"extra_headers": {"Cookie": (c := f"session={rnd(rng, 28)}")}}, ("TOKEN", c))
    items.add("params", "params", {"extra_query": {"access_token": (t := rnd(rng, 30))}}, ("TOKEN", t))
    items.add("params", "params", {"base_url": f"https://api.example.com/v1?api_key={(k := rnd(rng, 32))}"},
              ("API_KEY", k))
    items.add("params", "params", {"extra_body": {"user": (e := "ops.lead@example.com")}}, ("EMAIL", e))
    items.add("params", "params", {"extra_headers": {"X-Forwarded-For": (ip := "198.51.100.23")}}, ("IP", ip))
    items.add("params", "message", f"curl -H 'Authorization: Bearer {(t := rnd(rng, 40))}' https://api.example.com",
              ("TOKEN", t))
    items.add("params", "tool_arguments", {"headers": {"Authorization": f"Bearer {(t := rnd(rng, 36))}"}},
              ("TOKEN", t))
    items.add("params", "metadata", {"request": {"authorization": f"bearer {(t := rnd(rng, 24))}"}}, ("TOKEN", t))


# -- data: text that starts with data: but is not a base64 data URL -------------------------------------


def data(items: Items) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(40))).decode()
    items.add("data", "message", "data: call me on (415) 555-0132", ("PHONE", "(415) 555-0132"))
    items.add("data", "content_part", "data:text/plain,reach ann.lee@example.com", ("EMAIL", "ann.lee@example.com"))
    items.add("data", "image_url", f"data:image/png;base64,{png} from bob.k@example.org",
              ("EMAIL", "bob.k@example.org"))
    items.add("data", "answer", "data: the card is 4111 1111 1111 1111", ("CARD", "4111 1111 1111 1111"))
    items.add("data", "tool_result", "data:application/json,{\"ip\": \"192.0.2.44\"}", ("IP", "192.0.2.44"))
    items.add("data", "metadata", {"payload": "data:;base64 ssn 512-44-7781"}, ("SSN", "512-44-7781"))
    items.add("data", "tool_arguments", {"name": "data: Jane Roe <jane.roe@example.com>"},
              ("EMAIL", "jane.roe@example.com"))
    items.add("data", "error", "data:image/png;base64,AAAA\nuser=mia@example.com", ("EMAIL", "mia@example.com"))
    items.add("data", "message", "data:text/csv;charset=utf-8,name,iban\nAnn,GB82WEST12345698765432",
              ("IBAN", "GB82WEST12345698765432"))


# -- tokens: more JWT shapes and places ----------------------------------------------------------------


def tokens(items: Items) -> None:
    rng = random.Random(33)

    def jwt(header: dict[str, Any], payload: bytes, signature: str) -> str:
        return f"{b64url(json.dumps(header).encode())}.{b64url(payload)}.{signature}"

    cases = [
        jwt({"alg": "none", "typ": "JWT"}, json.dumps({"sub": "42", "admin": True}).encode(), ""),
        jwt({"alg": "none"}, b"hello world, not json", ""),
        jwt({"alg": "HS256"}, bytes(rng.randrange(256) for _ in range(48)), rnd(rng, 43, ALNUM + "-_")),
        jwt({"typ": "JWT", "alg": "ES256"}, json.dumps({"email": "x@y.io"}).encode(), rnd(rng, 86, ALNUM + "-_")),
        jwt({"alg": "RS256", "kid": "k1"}, b"1234567890", rnd(rng, 342, ALNUM + "-_")),
        jwt({"alg": "EdDSA"}, json.dumps({"scope": "read"}).encode(), rnd(rng, 86, ALNUM + "-_")),
        jwt({"alg": "HS512", "typ": "at+jwt"}, b"opaque-payload", rnd(rng, 86, ALNUM + "-_")),
        jwt({"alg": "none"}, json.dumps({"iss": "me"}).encode(), ""),
    ]
    places: list[tuple[str, Any]] = [
        ("message", "token: {t}"), ("answer", "Here it is: {t}."), ("tool_result", '{{"access_token": "{t}"}}'),
        ("metadata", {"id": "{t}"}), ("tool_arguments", {"type": "{t}"}), ("message", "https://app.example.com/cb#id_token={t}&state=1"),
        ("tool_call", {"index": "{t}"}), ("label", {"session": "{t}"}),
    ]
    for token, (where, shape) in zip(cases, places, strict=True):
        value = shape.format(t=token) if isinstance(shape, str) else {k: v.format(t=token) for k, v in shape.items()}
        items.add("tokens", where, value, ("JWT", token))


# -- places: PII in the other parts of a record --------------------------------------------------------


def places(items: Items) -> None:
    rng = random.Random(55)
    items.add("places", "tags", ["customer:kim.ho@example.com", "vip"], ("EMAIL", "kim.ho@example.com"))
    items.add("places", "tags", ["caller +1 415 555 0199"], ("PHONE", "+1 415 555 0199"))
    items.add("places", "error", "lookup failed for 10.20.30.40: timeout", ("IP", "10.20.30.40"))
    items.add("places", "error", "ValueError: SSN 219-09-9999 is not in the registry", ("SSN", "219-09-9999"))
    long_text = " ".join(rnd(rng, 8, string.ascii_lowercase) for _ in range(200))
    items.add("places", "message", f"{long_text} reply to li.wei@example.com {long_text}", ("EMAIL", "li.wei@example.com"))
    items.add("places", "tool_message", f"{long_text} card 5500 0000 0000 0004", ("CARD", "5500 0000 0000 0004"))
    items.add("places", "tool_arguments", {"to": ["a.one@example.com", "b.two@example.com"], "subject": "hi"},
              ("EMAIL", "a.one@example.com"), ("EMAIL", "b.two@example.com"))
    items.add("places", "tool_result", {"rows": [{"id": 1, "email": "c.three@example.com", "phone": "(212) 555-0147"}]},
              ("EMAIL", "c.three@example.com"), ("PHONE", "(212) 555-0147"))
    items.add("places", "metadata", {"user": {"profile": {"contact": {"phone": "+49 30 1234 5678"}}}},
              ("PHONE", "+49 30 1234 5678"))
    items.add("places", "escalation", {"detail": {"ip": "2001:db8:4::17"}}, ("IP", "2001:db8:4::17"))
    items.add("places", "label", {"iban": "DE89 3704 0044 0532 0130 00"}, ("IBAN", "DE89 3704 0044 0532 0130 00"))
    items.add("places", "metadata", {"password": (p := "correct-horse-9-battery")}, ("API_KEY", p))
    items.add("places", "tool_arguments", {"client_secret": (s := rnd(rng, 24))}, ("API_KEY", s))
    items.add("places", "history_tool_call", {"query": "orders of rita@example.com", "limit": 5},
              ("EMAIL", "rita@example.com"))
    pem = ("-----BEGIN PRIVATE KEY-----\n" + "\n".join(rnd(rng, 64, ALNUM + "+/") for _ in range(4))
           + "\n-----END PRIVATE KEY-----")
    items.add("places", "tool_result", pem, ("PRIVATE_KEY", pem))
    items.add("places", "answer", "Your AWS key ASIA" + (a := rnd(rng, 16, string.ascii_uppercase + string.digits))
              + " was rotated.", ("API_KEY", "ASIA" + a))
    items.add("places", "content_part", "GitHub token github_pat_" + (g := rnd(rng, 40, ALNUM + "_")),
              ("API_KEY", "github_pat_" + g))
    items.add("places", "message", "mail x@example.com, then y@example.com", ("EMAIL", "x@example.com"),
              ("EMAIL", "y@example.com"))
    items.add("places", "tool_message", "IPs 192.0.2.1 and 2001:db8::1 seen", ("IP", "192.0.2.1"), ("IP", "2001:db8::1"))
    items.add("places", "answer", "Ring 020 7946 0958 or +44 20 7946 0958", ("PHONE", "020 7946 0958"),
              ("PHONE", "+44 20 7946 0958"))


def national(items: Items) -> None:
    """Phone numbers in national format (no country code) from several countries,
    IPv4 addresses after words that are not version words, and their look-alikes."""
    numbers = [
        "020 7946 0958", "(020) 7946 0958", "0161 496 0000", "07700 900123",  # UK
        "01 23 45 67 89", "06-12-34-56-78",  # France
        "030 12345678", "0151 23456789",  # Germany
        "(02) 9876 5432", "0412 345 678",  # Australia
        "03-1234-5678", "090-1234-5678",  # Japan
        "06 1234 5678", "020 123 4567",  # Italy, the Netherlands
        "(11) 91234-5678", "(55) 1234 5678", "138 0013 8000",  # Brazil, Mexico, China (no trunk prefix)
    ]
    for i, number in enumerate(numbers):
        text = TEMPLATES[i % len(TEMPLATES)].replace("{v}", number)
        place_text(items, "national", STRING_PLACES[i % len(STRING_PLACES)], text, ("PHONE", number))
    for i, (text, ip) in enumerate([("dev box 10.0.0.5 is down", "10.0.0.5"), ("IPv4 198.51.100.7 blocked", "198.51.100.7"),
                                    ("server at 203.0.113.9, port 22", "203.0.113.9")]):
        items.add("national", STRING_PLACES[i], text, ("IP", ip))
    for i, text in enumerate(["FileVersion 10.0.0.1", "firmware v1.2.3.4 shipped", "ver. 4.3.2.1 of the SDK",
                              "on 05-02-2025 10:30", "pages 0100-0120", "codes 01 02 03", "0,99 EUR",
                              "shipped 2025-05-02, 3 items", "total 100 000 000 units", "(12) 34 items",
                              "range 1999-2024"]):
        items.add("neg", STRING_PLACES[i % len(STRING_PLACES)], text)


def formats(items: Items) -> None:
    """Formats beyond the first set: addresses with accented or non-Latin letters and next to text
    written without spaces, US numbers split by spaces, SSNs split by spaces, the keys of more
    providers (LLM APIs, package registries, e-mail, hosting, shops) and a short password under a
    secret-named key; and their look-alikes."""
    rng = random.Random(7)
    for i, (text, value) in enumerate([
        ("Write to josé.garcía@example.es today", "josé.garcía@example.es"),
        ("Łukasz.Müller@firma.pl asked for a refund", "Łukasz.Müller@firma.pl"),
        ("contact: user@bücher.de", "user@bücher.de"),
        ("请联系我jane@example.com谢谢", "jane@example.com"),
        ("メール：taro@例え.jp です", "taro@例え.jp"),
    ]):
        place_text(items, "formats", STRING_PLACES[i % len(STRING_PLACES)], text, ("EMAIL", value))
    for i, (text, value) in enumerate([("call 415 555 0132 after 5", "415 555 0132"),
                                       ("SSN 123 45 6789 on file", "123 45 6789"),
                                       ("ssn: 234 56 7890", "234 56 7890")]):
        place_text(items, "formats", STRING_PLACES[(i + 2) % len(STRING_PLACES)], text,
                   ("PHONE" if i == 0 else "SSN", value))
    keys = ["gsk_" + rnd(rng, 52), "xai-" + rnd(rng, 80), "pplx-" + rnd(rng, 48), "r8_" + rnd(rng, 37),
            "npm_" + rnd(rng, 36), "pypi-AgEIcHlwaS5vcmc" + rnd(rng, 60, ALNUM + "_-"),
            "SG." + rnd(rng, 22, ALNUM + "_-") + "." + rnd(rng, 43, ALNUM + "_-"),
            "dop_v1_" + rnd(rng, 64, "0123456789abcdef"), "shpat_" + rnd(rng, 32, "0123456789abcdef")]
    for i, key in enumerate(keys):
        place_text(items, "formats", STRING_PLACES[i % len(STRING_PLACES)], f"use {key} for the deploy", ("API_KEY", key))
    items.add("formats", "tool_arguments", {"user": "bob", "password": "hunter2"}, ("API_KEY", "hunter2"))
    items.add("formats", "tool_call", {"username": "ann", "pin": "4821", "api_key": "k3y!"}, ("API_KEY", "k3y!"))
    for i, text in enumerate(["sizes 150 300 4000", "year 2024 03 15", "shipping soon", "SG.1 was fine",
                              "code 123-45 6789", "write to a_b@localhost", "order 987 65 4321 units"]):
        items.add("neg", STRING_PLACES[i % len(STRING_PLACES)], text)
    items.add("neg", "tool_arguments", {"max_tokens": 256, "token_type": "bearer", "password_hint": "pet name"})


# -- neg: hard negatives ---------------------------------------------------------------------------------


def negatives(items: Items) -> None:
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
    jpeg = "data:image/jpeg;base64," + base64.b64encode(bytes(range(255, 155, -1))).decode()
    svg = "data:image/svg+xml;charset=utf-8;base64," + base64.b64encode(b"<svg xmlns='x'/>").decode()
    texts = [
        "Released v2.14.0-rc.1 on 2025-01-07.", "Upgrade to 3.12.4 before 2024-10-01.", "node 20.11.1, npm 10.2.4",
        "OpenSSL 3.0.2 15 Mar 2022", "Chrome 120.0.6099.109 is current.", "kernel 6.8.0-45-generic",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8", "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "md5 d41d8cd98f00b204e9800998ecf8427e",
        "etag W/\"5e15153d-120f\"", "2024-03-15T10:30:00Z", "Tue, 15 Nov 1994 08:12:31 GMT", "15/03/2024 10:30",
        "from 2023-12-31 to 2024-01-01", "run 550e8400-e29b-41d4-a716-446655440000 finished",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736", "ULID 01ARZ3NDEKTSV4RRFFQ69G5FAV", "Total: $2,500,000.00",
        "EUR 1.234,56 incl. VAT", "price 12.99 USD x 3 = 38.97 USD", "1 234,50 €", "discount -15% on 199.00",
        png, jpeg, svg, "eyJ is not a word", "header eyJhbGciOiJIUzI1NiJ9 only, no dots",
        "eyJhIjoxfQ.eyJiIjoyfQ.", "see config.eyJ.json", "a.b.c.d.e", "Bearer-token support is planned",
        "the bearer of this note", "port 8080, status 200, retry 3", "HTTP/1.1 404 Not Found",
        "call get_order(id=1234) then get_user(name='x')", "latitude 37.7749, longitude -122.4194",
        "ISBN 0-306-40615-2", "ticket JIRA-4521 blocks PROJ-77", "step 3 of 12, 25% done",
        "matrix 3x4, shape (128, 768)", "token count 1532, max_tokens 4096", "temperature=0.7 top_p=0.95",
        "The API key must be set in OPENAI_API_KEY.", "password policy: 12 characters minimum",
        "build 2024.03.15-1", "AssemblyVersion 2.0.0.0", "scale 1:50000", "C:\\Users\\Public\\Documents\\report.pdf",
        "/var/lib/slm/models/smollm2-135m-q8_0.gguf", "https://example.com/docs/v1/tools#name",
        "9:41 AM", "the years 1914-1918", "zip 94105", "fax: none", "room 4-101",
    ]
    for i, text in enumerate(texts):
        items.add("neg", STRING_PLACES[i % len(STRING_PLACES)], text)
    items.add("neg", "image_url", png)
    items.add("neg", "image_url", jpeg)
    objects: list[tuple[str, Any]] = [
        ("tool_call", {"id": "c1", "type": "function"}),
        ("tool_call", {"name": "get_weather", "index": 0, "city": "Paris"}),
        ("history_tool_call", {"order_id": "A-1042", "role": "admin"}),
        ("tool_arguments", {"query": "SELECT name FROM users WHERE id = 7", "limit": 10}),
        ("tool_arguments", {"tool_call_id": "call_abc123", "finish_reason": "stop"}),
        ("tool_result", {"status": "ok", "version": "1.4.2", "updated": "2024-05-01"}),
        ("tool_result", {"id": "550e8400-e29b-41d4-a716-446655440000", "type": "invoice", "total": 129.5}),
        ("tool_message", {"temperature_c": 12.5, "wind_kmh": 15, "summary": "Light rain"}),
        ("metadata", {"index": 3, "role": "planner", "finish_reason": "stop", "name": "query_writer"}),
        ("metadata", {"model": "SmolLM2-135M-Instruct-Q8_0", "latency_ms": 12.5, "git": "a1b2c3d"}),
        ("metadata", {"thumbnail": png, "id": "run-42"}),
        ("metadata", {"run_id": "01HZX3K9M2", "parent": "7f3a9c2e", "step": 4}),
        ("params", {"temperature": 0.2, "max_tokens": 256, "top_p": 0.9, "seed": 42}),
        ("params", {"response_format": {"type": "json_object"}, "stop": ["\n\n"], "model": "gpt-4o-mini"}),
        ("params", {"extra_headers": {"X-Request-Id": "req-8841", "Accept": "application/json"}}),
        ("tags", ["prod", "v1.2.3", "eu-west-1"]),
        ("tags", ["2024-Q3", "batch-17"]),
        ("escalation", {"detail": {"attempts": 2, "model": "smollm2"}, "note": "schema mismatch"}),
        ("label", {"reviewer": "team-a", "rubric": "v2"}),
    ]
    for where, value in objects:
        items.add("neg", where, value)


def build() -> list[dict[str, Any]]:
    items = Items()
    unit(items)
    gaps(items)
    keys(items)
    params(items)
    data(items)
    tokens(items)
    places(items)
    negatives(items)
    national(items)
    formats(items)
    return items.rows


def render(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    rows = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(rows), encoding="utf-8")
    negatives_count = sum(1 for r in rows if not r["pii"])
    print(f"wrote {OUT}: {len(rows)} items ({len(rows) - negatives_count} with PII, {negatives_count} hard negatives)")
