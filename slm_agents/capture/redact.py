"""PII and secret redaction for captured calls.

A :class:`Redactor` finds spans of personal data and secrets in text and replaces each with a
typed, numbered placeholder. Numbering is consistent within one :class:`RedactionSession` (the
capture store opens one per call): the same e-mail address twice becomes ``<EMAIL_1>`` both
times, a second address ``<EMAIL_2>``.

Built-in kinds (placeholder names):

============== ==============================================================================
``EMAIL``       e-mail addresses
``PHONE``       phone numbers: international ``+CC ...``, North-American ``(555) 123-4567``,
                national ``020 7946 0958`` / ``(11) 91234-5678`` / ``138 0013 8000``
``CARD``        payment card numbers, 13-19 digits, Luhn-checked
``SSN``         US social security numbers ``123-45-6789``, ``123 45 6789`` (invalid areas excluded)
``IBAN``        IBANs, mod-97 checked
``IP``          IPv4 and IPv6 addresses (validated by :mod:`ipaddress`; not a version number
                such as ``v1.2.3.4``)
``API_KEY``     ``sk-…``, ``AKIA…``/``ASIA…``, ``ghp_…``/``github_pat_…``, ``xox?-…``, ``AIza…``,
                Stripe, GitLab, Hugging Face, Groq, xAI, Perplexity, Replicate, npm, PyPI,
                SendGrid, DigitalOcean and Shopify keys, high-entropy values after
                ``key=``/``token=``/``secret:`` …, and the value of a secret-named key
``TOKEN``       bearer tokens (``Authorization: Bearer …``; the word ``Bearer`` is kept)
``JWT``         JSON web tokens
``PRIVATE_KEY`` PEM private key blocks
============== ==============================================================================

Extra detectors are a compiled regex or a callable ``text -> iterable of (start, end)``; plugins
add them through the ``register_redactors`` hook.

Example:
    >>> r = Redactor()
    >>> r.redact_text("mail bob@example.com or bob@example.com, not ann@example.org")
    ('mail <EMAIL_1> or <EMAIL_1>, not <EMAIL_2>', {'EMAIL': 3})
    >>> Redactor.off().redact_text("bob@example.com")
    ('bob@example.com', {})
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import hashlib
import ipaddress
import json
import math
import os
import re
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from ..errors import InvalidRequest
from ._utils import jsonable, truncation_marker

__all__ = ["Redactor", "RedactionSession", "DEFAULT_KINDS", "Detector", "drop_credentials", "is_credential_key",
           "data_url_media_type"]

Span = tuple[int, int]
Detector = Union["re.Pattern[str]", Callable[[str], Iterable[Span]]]

# --- validators ---------------------------------------------------------------------------------


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in moved))
    except ValueError:
        return False
    return number % 97 == 1


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


# --- built-in detectors -------------------------------------------------------------------------

# Patterns start with a character class, and look behind only after it, so that the regex
# engine can skip quickly to candidate positions (a leading look-behind makes it try every one).
# A local part may hold accented Latin letters (josé@example.com), a domain label letters of any
# script (user@bücher.de); the top-level domain is ASCII and the address may touch text of scripts
# written without spaces (请联系jane@example.com谢谢), which \b would not end it at.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-\u00C0-\u024F]{1,64}@(?:[\w-]{1,63}\.)+[A-Za-z]{2,24}(?![A-Za-z])")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
)
# header.payload.signature: the payload need not be JSON (a JWS), the signature may be empty
# (``alg: none``); the header must decode to a JSON object naming ``alg`` (checked in _find_jwt).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}={0,2}\.[A-Za-z0-9_-]*={0,2}\.(?:[A-Za-z0-9_-]+={0,2})?(?![A-Za-z0-9_-])")
_DATA_URL = re.compile(r"data:([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)?(?:;[A-Za-z0-9.+-]+=[A-Za-z0-9.+-]+)*;base64,"
                       r"[A-Za-z0-9+/\s]*={0,2}\s*")
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)")
_API_KEY_PREFIXES = ("sk-", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "gh", "github_pat_", "xox", "AIza",
                     "_live_", "_test_", "glpat-", "hf_", "gsk_", "xai-", "pplx-", "r8_", "npm_", "pypi-", "SG.",
                     "dop_v1_", "shp")
# One of the prefixes each _API_KEYS branch starts with; ``gh`` only as ``gh[pousr]_`` (plain "gh"
# is in "through", "high"...), ``shp`` only as Shopify's ``shpat_``...
_API_KEY_PREFIX = re.compile(  # _API_KEY_PREFIXES grouped by first character: a third faster than one alternation
    r"s(?:k-|hp(?:at|ss|ca|pa)_)|A(?:KIA|SIA|GPA|IDA|ROA|Iza)|g(?:h[pousr]_|ithub_pat_|lpat-|sk_)"
    r"|x(?:ox|ai-)|_(?:live|test)_|hf_|p(?:plx|ypi)-|r8_|npm_|SG\.|dop_v1_"
)
_API_KEYS = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposre]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}|pplx-[A-Za-z0-9]{40,}|r8_[A-Za-z0-9]{30,}"  # Groq, xAI, Perplexity, Replicate
    r"|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}"  # npm, PyPI
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"  # SendGrid
    r"|dop_v1_[a-f0-9]{64}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"  # DigitalOcean, Shopify
    r")(?![A-Za-z0-9_-])"
)
_SECRET_WORDS = ("key", "secret", "token", "passw", "pwd")
_SECRET_WORD = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)


def _has_secret_word(text: str) -> bool:
    """``_SECRET_WORD.search(text)``: ASCII text is lowered and searched with ``in`` (many times
    faster than a case-insensitive alternation); other text keeps the regex and its case folding."""
    if text.isascii():
        lowered = text.lower()
        for word in _SECRET_WORDS:  # noqa: SIM110 - a plain loop: no generator per text
            if word in lowered:
                return True
        return False
    return _SECRET_WORD.search(text) is not None

_SECRET_NAME = r"(?:api[_-]?key|apikey|access[_-]?key|secret(?:[_-]?key)?|client[_-]?secret|(?:access|auth|refresh|api)?[_-]?token|password|passwd|pwd)"
_KEY_VALUE = re.compile(
    r"(?i)(?<![A-Za-z0-9])" + _SECRET_NAME + r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_\-./+=~]{12,})"
)
_SECRET_KEY_NAME = re.compile(r"(?i)^[\w-]*" + _SECRET_NAME + r"$")
_SSN = re.compile(r"\d(?<![\d-]\d)\d\d(?P<sep>[- ])\d\d(?P=sep)\d{4}(?![\d-])")  # 123-45-6789, 123 45 6789
_CARD = re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4 = re.compile(r"\d(?<![\d.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)")
# an IPv4 tail is tried before a hex group: "192" of 1:2:3:4:5:6:192.0.2.7 is not the end of the address
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:])")
_PHONE = re.compile(
    r"(?:\+(?<![\w+]\+)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +CC international
    r"|\((?<![\w+]\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\((?<![\w+]\()[1-9]\d\) ?\d{4,5}[ -]\d{4}"  # (11) 91234-5678, (55) 1234 5678: Brazil, Mexico
    r"|1(?<![\w+.-]1)[3-9]\d(?P<cn>[ -])\d{4}(?P=cn)\d{4}"  # 138 0013 8000: Chinese mobiles
    r"|\d(?<![\w+]\d)(?:\d\d[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|[ .-]\d{3}[ .-]\d{3}[ .-]\d{4})"  # 1 555 123 4567
    r"|[2-9](?<![\w+]\d)\d\d [2-9]\d\d \d{4}"  # 415 555 0132 (area and exchange codes start 2-9)
    # national numbers, dialled with the trunk prefix 0 (9-12 digits, checked in _find_phone):
    r"|\(0(?<![\w+]\(0)\d{1,4}\)[ -]?\d{2,8}(?:[ -]\d{2,8}){0,3}"  # (020) 7946 0958, (02) 9876 5432
    r"|0(?<![\w+.-]0)\d{1,4}(?P<sep>[ -])\d{2,8}(?:(?P=sep)\d{2,8}){0,3})"  # 020 7946 0958, 06-12-34-56-78
    r"(?![\w-])"
)
#: Digits a national number (trunk prefix 0, no country code) has: 9 (Italy, Belgium) to 12 (German mobiles).
_NATIONAL_DIGITS = (9, 12)


def _find_email(text: str) -> Iterable[Span]:
    # What _EMAIL.finditer finds, scanning only from 64 characters before each "@": a match holds an
    # "@" and at most 64 characters before it, and the pattern looks at nothing before its start.
    pos = 0
    at = text.find("@")
    while at >= 0:
        m = _EMAIL.search(text, max(pos, at - 64))
        if m is None:
            return
        yield m.span()
        pos = m.end()
        at = text.find("@", pos)


def _find_private_key(text: str) -> Iterable[Span]:
    if "PRIVATE KEY" in text:
        for m in _PRIVATE_KEY.finditer(text):
            yield m.span()


def _jwt_header_ok(header: str) -> bool:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header.rstrip("=") + "=" * (-len(header.rstrip("=")) % 4)))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return False
    return isinstance(decoded, dict) and ("alg" in decoded or "typ" in decoded)


def _find_jwt(text: str) -> Iterable[Span]:
    if "eyJ" in text:
        for m in _JWT.finditer(text):
            header, payload, signature = m.group().split(".")
            if payload.startswith("eyJ") and len(payload) >= 8 and len(signature) >= 8:
                yield m.span()  # the classic shape: no need to decode
            elif _jwt_header_ok(header) and (payload or signature):
                yield m.span()


def _find_bearer(text: str) -> Iterable[Span]:
    if "earer" in text or "EARER" in text:
        for m in _BEARER.finditer(text):
            yield m.span(1)


def _find_api_key(text: str) -> Iterable[Span]:
    if _API_KEY_PREFIX.search(text) is not None:
        yield from (m.span() for m in _API_KEYS.finditer(text))
    if ("=" in text or ":" in text) and _has_secret_word(text):
        for m in _KEY_VALUE.finditer(text):
            value = m.group(1).rstrip(".")
            has_digit = any(c.isdigit() for c in value)
            has_alpha = any(c.isalpha() for c in value)
            if has_digit and has_alpha and _entropy(value) >= 3.0:
                yield m.start(1), m.start(1) + len(value)


# The numeric finders take ``pos``/``endpos`` so that only the runs of digits that can hold a match
# are scanned (see _number_runs); on their own they scan the whole text.
_END = sys.maxsize


def _find_ssn(text: str, pos: int = 0, endpos: int = _END) -> Iterable[Span]:
    for m in _SSN.finditer(text, pos, endpos):
        area, group, serial = m.group().split(m.group("sep"))
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield m.span()


def _find_card(text: str, pos: int = 0, endpos: int = _END) -> Iterable[Span]:
    for m in _CARD.finditer(text, pos, endpos):
        digits = m.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _luhn(digits) and len(set(digits)) > 1:
            yield m.span()


def _find_iban(text: str) -> Iterable[Span]:
    for m in _IBAN.finditer(text):
        chunk = m.group()
        # the regex may swallow a trailing word: retry shorter until the checksum holds
        while chunk:
            if _iban_ok(chunk.replace(" ", "")):
                yield m.start(), m.start() + len(chunk)
                break
            cut = chunk.rfind(" ")
            if cut <= 4:
                break
            chunk = chunk[:cut]


def _find_ip(text: str) -> Iterable[Span]:
    # IPv6 first: an address with an IPv4 tail (2001:db8::1:192.0.2.7) is one span, not a leaked
    # IPv6 prefix before an <IP_n> (the first span found wins an overlap)
    yield from _find_ipv6(text)
    if text.count(".") >= 3:
        yield from _find_ipv4(text)


# A dotted quad right after a version word is a version number (AssemblyVersion 2.0.0.0, v1.2.3.4,
# ver. 4.3.2.1), not an address; "dev", "server" or "IPv4" before one change nothing.
_VERSION_BEFORE = re.compile(r"(?i)(?:version|\bver|\brev|\bv)\.?\s*[:=]?\s*$")


def _find_ipv4(text: str, pos: int = 0, endpos: int = _END) -> Iterable[Span]:
    for m in _IPV4.finditer(text, pos, endpos):
        start = m.start()
        if start and _VERSION_BEFORE.search(text, max(0, start - 24), start) is not None:
            continue
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield m.span()


# Every _IPV6 match has two colons with at most four hex digits between them (its ``{2,7}``
# groups): a text without that (JSON's ``": "``, times like 10:30) cannot hold one.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _find_ipv6(text: str) -> Iterable[Span]:
    # an address has "::", or 7 colons, or 6 before an IPv4 tail (1:2:3:4:5:6:192.0.2.7)
    colons = text.count(":")
    if ("::" in text or colons >= 7 or (colons == 6 and "." in text)) and _IPV6_HINT.search(text) is not None:
        for m in _IPV6.finditer(text):
            candidate = m.group()
            if sum(c.isalnum() for c in candidate) < 3:
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield m.span()


def _find_phone(text: str, pos: int = 0, endpos: int = _END) -> Iterable[Span]:
    for m in _PHONE.finditer(text, pos, endpos):
        found = m.group()
        if found.isascii():
            digits = len(found) - len(found.encode("ascii").translate(None, _DIGITS))
        else:
            digits = sum(c.isdigit() for c in found)
        low, high = _NATIONAL_DIGITS if found[0] == "0" or found.startswith("(0") else (7, 15)
        if low <= digits <= high:
            yield m.span()


_DIGITS = b"0123456789"
_DROP_DIGITS = str.maketrans("", "", "0123456789")
_RUN_SEPARATORS = b" ().+-"
_DROP_RUN_SEPARATORS = str.maketrans("", "", _RUN_SEPARATORS.decode())

#: The built-in detectors, in priority order (an earlier kind wins an overlap).
DEFAULT_KINDS: dict[str, Callable[[str], Iterable[Span]]] = {
    "PRIVATE_KEY": _find_private_key,
    "JWT": _find_jwt,
    "TOKEN": _find_bearer,
    "API_KEY": _find_api_key,
    "EMAIL": _find_email,
    "IBAN": _find_iban,
    "CARD": _find_card,
    "SSN": _find_ssn,
    "IP": _find_ip,
    "PHONE": _find_phone,
}
# Built-in kinds that need at least this many digits in the text to be worth looking for (not IP:
# an IPv6 address such as fe80::a can have fewer; IPv4 is ruled out by the number runs below).
_MIN_DIGITS = {"IBAN": 7, "CARD": 13, "SSN": 9, "PHONE": 7}
# A run of digits and `` ().+-`` between them. The digits of any CARD, SSN, PHONE or IPv4 match lie in
# one run (none has other characters between its digits), and the match lies within the run plus
# the one character before it (a leading ``+`` or ``(``): those detectors only scan the runs that
# have enough digits for them. Runs shorter than 4 characters cannot hold 4 digits: not matched.
_NUMBER_RUN = re.compile(r"\d[\d ().+-]{2,}\d")
#: Per numeric kind: its finder and the digits a run needs to hold one.
_RUN_FINDERS: dict[str, tuple[Callable[..., Iterable[Span]], int]] = {
    "CARD": (_find_card, 13), "SSN": (_find_ssn, 9), "IP": (_find_ipv4, 4), "PHONE": (_find_phone, 7),
}


def _count_digits(text: str) -> int:
    """Digits in ``text`` as the detectors' ``\\d`` counts them (any script's decimal digits)."""
    if text.isascii():  # bytes.translate deletes in C, several times faster than str.translate
        return len(text) - len(text.encode("ascii").translate(None, _DIGITS))
    return sum(1 for c in text if c.isdecimal())


def _number_runs(text: str) -> list[tuple[int, int, int, int, int]]:
    """``(start, end, digits, seps, dots)`` of each run of at least 4 digits, in order; ``seps``
    counts the dashes or the spaces, whichever it has more of (an SSN needs two of one)."""
    runs = []
    for m in _NUMBER_RUN.finditer(text):  # a run of fewer than 4 digits is too short for every kind
        run = m.group()
        start, end = m.span()
        if run.isdecimal():  # digits only (isdecimal is the detectors' \d): the common case
            runs.append((start, end, end - start, 0, 0))
            continue
        # what is left without the separators are the digits (any script's, as the detectors' \d)
        digits = len(run.encode("ascii").translate(None, _RUN_SEPARATORS)) if run.isascii() else \
            len(run.translate(_DROP_RUN_SEPARATORS))
        runs.append((start, end, digits, max(run.count("-"), run.count(" ")), run.count(".")))
    return runs


def _find_in_runs(kind: str, text: str, runs: list[tuple[int, int, int, int, int]]) -> list[Span]:
    """What ``kind``'s finder finds in ``text``, scanning only the runs that can hold one."""
    finder, need = _RUN_FINDERS[kind]
    spans: list[Span] = []
    for start, end, digits, seps, dots in runs:
        if digits < need or (kind == "SSN" and seps < 2) or (kind == "IP" and dots < 3):
            continue
        # one character of look-behind room before the run, three past it for the look-aheads
        # (past the run no separator is followed by a digit, so nothing can match there)
        spans.extend(finder(text, max(0, start - 1), end + 3))
    return spans


_NUMBER_KINDS = frozenset({"CARD", "SSN", "IP", "PHONE"})
# Built-in kinds whose finder first checks for one of these substrings (the same check, done
# before the finder is called at all).
_NEEDLES = {"PRIVATE_KEY": ("PRIVATE KEY",), "JWT": ("eyJ",), "TOKEN": ("earer", "EARER"), "EMAIL": ("@",)}
_KIND_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The findings cache: texts longer than this are not remembered; the texts kept as keys (those with
# no finding) hold at most this many characters together.
_CACHE_MAX_TEXT = 65536
_CACHE_MAX_CHARS = 4_000_000

# Structure of the OpenAI message / tool-call envelope: kept as is, but only at these positions
# (inside arguments, results and metadata the same keys are redacted like any other text).
_MESSAGE_KEYS = frozenset({"role", "tool_call_id"})
_TOOL_CALL_KEYS = frozenset({"id", "type", "index"})
_PART_KEYS = frozenset({"type"})
_FAST_DEPTH = 48
#: Shortest value under a secret-named key (``password``, ``api_key``...) redacted as a whole.
_MIN_SECRET_CHARS = 4
# Credential-shaped keys (headers, params): always dropped, whatever the redactor.
_CREDENTIAL_KEY = re.compile(
    r"(?i)^(?:proxy-)?authori[sz]ation$|cookie|api[_-]?key$|apikey|secret|passw|^pwd$|^x-[\w-]*-key$|"
    r"(?:^|[_-])token$|^x-amz-security|^(?:private|access)[_-]?key$|^auth$|credential|signature$"
)


@functools.lru_cache(maxsize=4096)
def is_credential_key(key: str) -> bool:
    """True for a header or parameter name that carries credentials (``Authorization``, ``X-Api-Key``...)."""
    return _CREDENTIAL_KEY.search(key) is not None


def drop_credentials(value: Any) -> Any:
    """A copy of a JSON-like ``value`` without any credential-shaped key, at any depth.

    Example:
        >>> drop_credentials({"extra_headers": {"Authorization": "Bearer x", "X-Trace": "1"}})
        {'extra_headers': {'X-Trace': '1'}}
    """
    if isinstance(value, Mapping):
        return {k: drop_credentials(v) for k, v in value.items() if not (isinstance(k, str) and is_credential_key(k))}
    if isinstance(value, (list, tuple)):
        return [drop_credentials(v) for v in value]
    return value


def data_url_media_type(text: str) -> str | None:
    """The media type of a well-formed base64 ``data:`` URL (``""`` when unnamed), else None."""
    if not text.startswith("data:"):
        return None
    m = _DATA_URL.fullmatch(text)
    if m is None:
        return None
    return (m.group(1) or "").lower()


def _str_keys(d: dict[Any, Any]) -> bool:
    """Every key is text (a plain loop: no generator per dict on the capture path)."""
    for k in d:  # noqa: SIM110
        if type(k) is not str:
            return False
    return True


@functools.lru_cache(maxsize=4096)
def _is_secret_key_name(key: str) -> bool:
    """A key whose whole value is a secret (``api_key``, ``password``...); keys repeat, so cached."""
    return _SECRET_KEY_NAME.match(key) is not None


def _as_finder(detector: Detector) -> Callable[[str], Iterable[Span]]:
    if isinstance(detector, str):
        detector = re.compile(detector)
    if isinstance(detector, re.Pattern):
        pattern = detector
        return lambda text: (m.span() for m in pattern.finditer(text))
    if callable(detector):
        return detector
    raise InvalidRequest(
        f"a redactor must be a regex (str or compiled) or a callable text -> spans, got {type(detector).__name__}"
    )


class Redactor:
    """Finds PII and secrets and replaces them with typed placeholders.

    Args:
        kinds: Built-in kinds to use (names from :data:`DEFAULT_KINDS`); True for all, False
            or an empty list for none.
        patterns: Extra detectors by placeholder name: a regex (str or compiled) or a callable
            ``text -> iterable of (start, end)``. They rank after the built-ins in overlaps.
        plugins: Also ask installed plugins (the ``register_redactors`` hook).
        cache_size: How many distinct strings' findings to remember (system prompts and the
            history of a conversation are re-sent on every call; remembering them makes
            redaction of a long conversation cheap). A text in which something was found is
            remembered by a keyed BLAKE2b digest only, never as text: the cache keeps no PII it
            found. 0 turns the cache off.

    Example:
        >>> r = Redactor(patterns={"EMPLOYEE_ID": r"\\bE\\d{6}\\b"})
        >>> r.redact_text("E123456 wrote from 10.0.0.7")[0]
        '<EMPLOYEE_ID_1> wrote from <IP_1>'
    """

    def __init__(
        self,
        *,
        kinds: bool | Iterable[str] = True,
        patterns: Mapping[str, Detector] | None = None,
        plugins: bool = False,
        cache_size: int = 4096,
    ) -> None:
        if kinds is True:
            chosen = list(DEFAULT_KINDS)
        elif kinds is False:
            chosen = []
        else:
            chosen = list(kinds)
            unknown = [k for k in chosen if k not in DEFAULT_KINDS]
            if unknown:
                raise InvalidRequest(
                    f"unknown redaction kind(s) {unknown}; choose from {sorted(DEFAULT_KINDS)} "
                    "or pass your own in patterns={...}"
                )
        self._finders: list[tuple[str, Callable[[str], Iterable[Span]]]] = [
            (k, DEFAULT_KINDS[k]) for k in DEFAULT_KINDS if k in chosen
        ]
        for name, detector in (patterns or {}).items():
            self.add(name, detector)
        if plugins:
            from ..plugins import get_plugin_manager

            get_plugin_manager().hook.register_redactors(register=self.add)
        self._cache: OrderedDict[str | bytes, tuple[tuple[int, int, str], ...]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_chars = 0  # characters of the texts kept as keys (the ones with no finding)
        # digests are keyed: a short text (a bare phone number) cannot be recovered from its digest
        # by trying every candidate, without this redactor's key
        self._cache_key = os.urandom(32)
        self._cache_lock = threading.Lock()

    @classmethod
    def default(cls) -> Redactor:
        """Every built-in kind plus every plugin's redactors (what a store uses by default)."""
        return cls(plugins=True)

    @classmethod
    def off(cls) -> Redactor:
        """A redactor that changes nothing."""
        return cls(kinds=False)

    @property
    def kinds(self) -> list[str]:
        """The placeholder names this redactor produces, in priority order."""
        return [name for name, _ in self._finders]

    @property
    def enabled(self) -> bool:
        return bool(self._finders)

    def add(self, name: str, detector: Detector) -> None:
        """Add a detector; ``name`` (upper-case) becomes its placeholder ``<NAME_n>``."""
        name = name.upper()
        if not _KIND_NAME.match(name):
            raise InvalidRequest(f"redactor name {name!r} must look like EMPLOYEE_ID (A-Z, 0-9, _)")
        finder = _as_finder(detector)
        self._finders = [(k, f) for k, f in self._finders if k != name] + [(name, finder)]
        if hasattr(self, "_cache"):
            self.clear_cache()  # findings of the old set of detectors no longer hold

    def clear_cache(self) -> None:
        """Forget every remembered finding (the store calls this when it closes)."""
        with self._cache_lock:
            self._cache.clear()
            self._cache_chars = 0

    # -- finding ---------------------------------------------------------------------------------
    def find(self, text: str) -> tuple[tuple[int, int, str], ...]:
        """Non-overlapping ``(start, end, kind)`` findings in ``text``, in order.

        Findings are remembered (see ``cache_size``): a text with none under the text itself (it
        holds nothing to hide: it is stored as it is), a text with some under a keyed digest (BLAKE2b
        with a random key of this redactor's), so that no text in which PII or a secret was found
        stays in memory because of the cache, nor can be found again from its digest by guessing.
        The result depends only on the text and the detectors, so a remembered one is exact.
        """
        if len(text) < 6 or not self._finders:
            return ()
        if len(text) > _CACHE_MAX_TEXT or not self._cache_size:
            return self._resolve(text, None)
        cache = self._cache
        hit = cache.get(text)
        if hit is not None:
            return hit
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16, key=self._cache_key).digest()
        hit = cache.get(digest)
        if hit is not None:
            return hit
        result = self._resolve(text, None)
        self._remember(digest if result else text, result)
        return result

    def _remember(self, key: str | bytes, result: tuple[tuple[int, int, str], ...]) -> None:
        with self._cache_lock:
            cache = self._cache
            if key in cache:
                return
            cache[key] = result
            if type(key) is str:
                self._cache_chars += len(key)
            while cache and (len(cache) > self._cache_size or self._cache_chars > _CACHE_MAX_CHARS):
                old, _ = cache.popitem(last=False)  # the oldest first
                if type(old) is str:
                    self._cache_chars -= len(old)

    def _plan(self) -> list[tuple[str, Callable[[str], Iterable[Span]], int, bool, tuple[str, ...]]]:
        """Per detector: kind, finder, digits the text needs, whether number runs can rule it out,
        and substrings one of which the text must contain (only built-in detectors are skipped by
        these shortcuts; a plugin's always runs)."""
        plan = getattr(self, "_plan_cache", None)
        if plan is None or plan[0] is not self._finders:
            steps = []
            for kind, finder in self._finders:
                builtin = finder is DEFAULT_KINDS.get(kind)
                steps.append((kind, finder, _MIN_DIGITS.get(kind, 0) if builtin else 0,
                              builtin and kind in _NUMBER_KINDS, _NEEDLES.get(kind, ()) if builtin else ()))
            plan = self._plan_cache = (self._finders, steps)
        return plan[1]

    def _resolve(self, text: str, found: dict[str, list[Span]] | None) -> tuple[tuple[int, int, str], ...]:
        """Findings of every detector, higher priority first; ``found`` holds spans already known
        per kind (None: run every detector)."""
        digits = _count_digits(text)
        runs: list[tuple[int, int, int, int, int]] | None = None
        chosen: list[tuple[int, int, str]] = []  # sorted, non-overlapping
        starts: list[int] = []
        for kind, finder, min_digits, number_kind, needles in self._plan():
            if found is not None and kind in found:
                spans: Iterable[Span] = found[kind]
            else:
                if digits < min_digits:
                    continue
                if needles:
                    for needle in needles:
                        if needle in text:
                            break
                    else:
                        continue  # none of the substrings this kind's finder looks for first
                if number_kind:  # CARD, SSN, IP, PHONE: scan only the runs of digits that can hold one
                    if kind == "SSN" and text.count("-") < 2 and text.count(" ") < 2:
                        continue
                    if kind == "IP" and text.count(".") < 3:
                        spans = list(_find_ipv6(text))
                    else:
                        if runs is None:
                            runs = _number_runs(text)
                        spans = _find_in_runs(kind, text, runs)
                        if kind == "IP":  # IPv6 first, as _find_ip: it may end with an IPv4 address
                            spans = list(_find_ipv6(text)) + spans
                else:
                    try:
                        spans = list(finder(text))
                    except Exception:  # noqa: BLE001 - a broken plugin detector must not break capture
                        continue
            for start, end in spans:
                if not 0 <= start < end <= len(text):
                    continue
                # chosen spans never overlap, so only the last one starting before ``end`` can
                # overlap this one: one binary search, not a scan (linear in the matches overall)
                at = bisect.bisect_left(starts, end)
                if at and chosen[at - 1][1] > start:
                    continue  # an earlier (higher-priority) kind already covers this
                if at == len(starts):
                    starts.append(start)
                    chosen.append((start, end, kind))
                else:
                    starts.insert(at, start)
                    chosen.insert(at, (start, end, kind))
        return tuple(chosen)

    def session(self) -> RedactionSession:
        """A numbering scope: one per captured call."""
        return RedactionSession(self)

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact one text on its own; returns the text and counts per kind."""
        session = self.session()
        return session.text(text), dict(session.counts)


class RedactionSession:
    """Redacts texts and JSON-like values with one consistent numbering of placeholders.

    Example:
        >>> s = Redactor().session()
        >>> s.value({"to": "a@b.io", "args": '{"cc": "a@b.io"}'})
        {'to': '<EMAIL_1>', 'args': '{"cc": "<EMAIL_1>"}'}
        >>> s.total
        2
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.counts: Counter[str] = Counter()
        self._numbers: dict[tuple[str, str], str] = {}
        self._next: dict[str, int] = {}
        #: Media types of the base64 ``data:`` URLs kept unredacted, with their counts.
        self.data_urls: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """How many spans were replaced so far."""
        return sum(self.counts.values())

    def _placeholder(self, kind: str, found: str) -> str:
        key = (kind, found)
        placeholder = self._numbers.get(key)
        if placeholder is None:
            number = self._next[kind] = self._next.get(kind, 0) + 1
            placeholder = f"<{kind}_{number}>"
            self._numbers[key] = placeholder
        return placeholder

    def text(self, text: str) -> str:
        """``text`` with every finding replaced."""
        if not self.redactor._finders:
            return text
        if text.startswith("data:"):
            media = data_url_media_type(text)
            if media is not None:
                self.data_urls[media or "unknown"] += 1
                return text
        findings = self.redactor.find(text)
        if not findings:
            return text
        parts: list[str] = []
        last = 0
        for start, end, kind in findings:
            parts.append(text[last:start])
            parts.append(self._placeholder(kind, text[start:end]))
            self.counts[kind] += 1
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def _string(self, value: str, key: str | None) -> str:
        if key is not None:
            if key == "arguments" and value[:1] in ("{", "["):
                return self.json_string(value)
            # the key says the value is a secret: a short password ("hunter2") is one too
            if (len(value) >= _MIN_SECRET_CHARS and _is_secret_key_name(key) and not value.startswith("<")
                    and "API_KEY" in self.redactor.kinds):
                self.counts["API_KEY"] += 1
                return self._placeholder("API_KEY", value)
        return self.text(value)

    def json_string(self, value: str) -> str:
        """Redact a JSON document given as a string (tool-call arguments): values only."""
        if "\\" not in value and not _has_secret_word(value) and not self.redactor.find(value):
            return value  # nothing found in the whole text, no secret-named key: nothing to do
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return self.text(value)
        if not isinstance(parsed, (dict, list)):
            return self.text(value)
        before = self.total
        cleaned = jsonable(parsed, text=self._string)
        if self.total == before:
            return value  # nothing found: keep the original bytes exactly
        return json.dumps(cleaned, ensure_ascii=False)

    def value(self, value: Any, *, max_string_chars: int | None = None, stats: dict[str, int] | None = None) -> Any:
        """A JSON-able copy of ``value`` with every string value redacted (keys are kept)."""
        return jsonable(value, text=self._string, max_string_chars=max_string_chars, stats=stats)

    # -- the message / tool-call envelope ----------------------------------------------------------
    def messages(self, value: Any, *, max_string_chars: int | None = None,
                 stats: dict[str, int] | None = None) -> Any:
        """Redact a list of chat messages: only the envelope's structural fields are kept as is.

        ``role``, ``tool_call_id``, a tool message's ``name``, content parts' ``type``, tool
        calls' ``id``/``type``/``index`` and the called function's ``name`` are structure;
        everything else (content, arguments, any extra field) is redacted.

        Example:
            >>> s = Redactor().session()
            >>> s.messages([{"role": "tool", "name": "find", "content": '{"name": "a@b.io"}'}])
            [{'role': 'tool', 'name': 'find', 'content': '{"name": "<EMAIL_1>"}'}]
        """
        self._limits(max_string_chars, stats)
        if type(value) is list:
            return [self._message(m) for m in value]
        return self._any(value, None)

    def tool_calls(self, value: Any, *, max_string_chars: int | None = None,
                   stats: dict[str, int] | None = None) -> Any:
        """Redact a list of tool calls (``id``, ``type``, ``index``, ``function.name`` kept)."""
        self._limits(max_string_chars, stats)
        if type(value) is list:
            return [self._tool_call(c) for c in value]
        return self._tool_call(value)

    def tool_choice(self, value: Any) -> Any:
        """Redact a ``tool_choice``: a mode string, or ``{"type": ..., "function": {"name": ...}}``."""
        self._limits(None, None)
        if isinstance(value, str) and value in ("auto", "none", "required", "any"):
            return value
        return self._tool_call(value)

    # The envelope walk works on the caller's values directly (no copy first); anything that is
    # not a plain dict/list/str/number, or nested deeper than _FAST_DEPTH, goes through jsonable.
    def _limits(self, max_string_chars: int | None, stats: dict[str, int] | None) -> None:
        self._limit = max_string_chars
        self._stats = stats if stats is not None else {}

    def _slow(self, v: Any, key: str | None) -> Any:
        if key is None:
            return jsonable(v, text=self._string, max_string_chars=self._limit, stats=self._stats)
        return jsonable({key: v}, text=self._string, max_string_chars=self._limit, stats=self._stats)[key]

    def _str(self, v: str, key: str | None) -> str:
        limit = self._limit
        if limit is not None and len(v) > limit:
            v = v[:limit] + truncation_marker(len(v) - limit)
            self._stats["truncated"] = self._stats.get("truncated", 0) + 1
        return self._string(v, key)

    def _content(self, v: str) -> str:
        """A message's text content: ``_str(v, "content")`` without the key checks (``content``
        is neither ``arguments`` nor a secret's name)."""
        limit = self._limit
        if limit is not None and len(v) > limit:
            return self._str(v, "content")
        return self.text(v)

    def _any(self, v: Any, key: str | None, depth: int = 0) -> Any:
        t = type(v)
        if t is str:
            return self._str(v, key)
        if v is None or t is bool or t is int or (t is float and v - v == 0):
            return v
        if depth < _FAST_DEPTH:
            if t is dict:
                if _str_keys(v):
                    return {k: self._any(item, k, depth + 1) for k, item in v.items()}
            elif t is list:
                return [self._any(item, None, depth + 1) for item in v]
        return self._slow(v, key)

    def _message(self, m: Any) -> Any:
        if type(m) is not dict:
            return self._any(m, None)
        for k in m:
            if type(k) is not str:
                return self._any(m, None)
        tool_role = m.get("role") in ("tool", "function")
        out: dict[str, Any] = {}
        for k, v in m.items():
            if k == "content" and type(v) is str:
                out[k] = self._content(v)
            elif type(v) is str and (k in _MESSAGE_KEYS or (k == "name" and tool_role)):
                out[k] = v
            elif k == "content" and type(v) is list:
                out[k] = [self._part(p) for p in v]
            elif k == "tool_calls" and type(v) is list:
                out[k] = [self._tool_call(c) for c in v]
            elif k == "function_call":
                out[k] = self._function(v)
            else:
                out[k] = self._any(v, k if k != "name" else None)
        return out

    def _part(self, p: Any) -> Any:
        if type(p) is not dict or not _str_keys(p):
            return self._any(p, None)
        return {k: (v if k in _PART_KEYS and type(v) is str else self._any(v, None if k in ("text", "url") else k))
                for k, v in p.items()}

    def _tool_call(self, c: Any) -> Any:
        if type(c) is not dict or not _str_keys(c):
            return self._any(c, None)
        out: dict[str, Any] = {}
        for k, v in c.items():
            if k in _TOOL_CALL_KEYS and type(v) in (str, int):
                out[k] = v
            elif k == "function":
                out[k] = self._function(v)
            else:
                out[k] = self._any(v, k)
        return out

    def _function(self, f: Any) -> Any:
        if type(f) is not dict or not _str_keys(f):
            return self._any(f, None)
        out: dict[str, Any] = {}
        for k, v in f.items():
            if k == "name" and type(v) is str:
                out[k] = v
            elif k == "arguments" and type(v) is str:
                out[k] = self._str(v, "arguments")
            else:
                out[k] = self._any(v, None if k == "arguments" else k)
        return out
