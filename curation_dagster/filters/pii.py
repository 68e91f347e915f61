"""Personal data in text: e-mail addresses, phone numbers, IP addresses, card numbers, IBANs and US SSNs.

Each kind has precompiled patterns and, where the format carries one, a checksum (Luhn for cards, mod-97
for IBANs, octet ranges for IPv4, the standard parser for IPv6, excluded number ranges for SSNs).
Overlapping finds are resolved longest first, then earliest, then by kind.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from curation_dagster.filters.base import Filter, Verdicts
from curation_dagster.spec import PIISettings

#: When two finds cover the same characters with the same length, the earlier kind here wins.
KINDS: tuple[str, ...] = ("email", "iban", "credit_card", "us_ssn", "ip_address", "phone")


@dataclass(frozen=True)
class PIISpan:
    """One find: the characters `text[start:end]` hold personal data of `kind`."""

    start: int
    end: int
    kind: str


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])"
)
#: Phone patterns with the group holding the number and the digits it must have (E.164 allows 15).
_PHONE: tuple[tuple[re.Pattern[str], int | str, int, int], ...] = (
    # international: +CC then up to six groups, optional trunk "(0)", separators space . - /
    (re.compile(r"(?<![\w+])\+[1-9]\d{0,3}+(?:[ .\-]?\(0\))?(?:[ .\-/]?\(?\d++\)?){1,6}+(?![\w])"), 0, 8, 15),
    # North American: (555) 123-4567, 555-123-4567, 1-555-123-4567
    (
        re.compile(
            r"(?<![\w+.\-/])(?<!\d[ ])(?:1[ .\-])?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .\-])\d{3}[ .\-]\d{4}"
            r"(?![\w]|[.\-/]\d)"
        ),
        0,
        10,
        11,
    ),
    # European with a trunk zero and one separator used throughout: 030 12345678, 06 12 34 56 78;
    # nine digits at least, so that dates such as 01.02.2024 (eight) are not phones
    (
        re.compile(
            r"(?<![\w+.\-/])(?<!\d[ ])(?:0[1-9]\d{0,3}(?P<sep>[ /.\-])\d{2,8}(?:(?P=sep)\d{2,4}){0,4}"
            r"|\(0[1-9]\d{0,3}\)[ ]?\d{2,8}(?:[ \-]\d{2,4}){0,3})(?![\w]|[/.\-]\d)"
        ),
        0,
        9,
        12,
    ),
    # Spanish grouping: 612 34 56 78
    (re.compile(r"(?<![\w+.\-/])(?<!\d[ ])[6-9]\d{2} \d{2} \d{2} \d{2}(?![\w]|[ .\-/]\d)"), 0, 9, 9),
    # after a label: "Tel. 0301234567", "phone: 5551234567"
    (
        re.compile(
            r"(?i:\b(?:tel|t[ée]l[ée]phone|telefon|tel[ée]fono|phone|mobile?|m[óo]vil|cell|handy|portable|fax)"
            r"\b\.?\s*:?\s*)(?P<number>\+?\(?\d[\d ()./\-]{5,20}\d)(?![\w])"
        ),
        "number",
        7,
        15,
    ),
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
#: Words after which four dotted numbers are a version, not an address.
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver\.?|build|release|v)\s*$")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)"
)
_CARD = re.compile(r"(?<![\w.\-])(?:\d{13,19}|\d{4,6}(?:[ \-]\d{2,6}){1,5})(?![\w]|[.\-]\d)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,32}")
_SSN = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|-\d)")
_GROUP_SEPARATOR = re.compile(r"[ \-]")

#: IBAN length per country (ISO 13616 registry).
_IBAN_LENGTHS = {
    **dict.fromkeys(["NO"], 15),
    **dict.fromkeys(["BE"], 16),
    **dict.fromkeys(["DK", "FI", "FO", "GL", "NL"], 18),
    **dict.fromkeys(["MK", "SI"], 19),
    **dict.fromkeys(["AT", "BA", "EE", "KZ", "LT", "LU", "XK"], 20),
    **dict.fromkeys(["CH", "HR", "LI", "LV"], 21),
    **dict.fromkeys(["BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"], 22),
    **dict.fromkeys(["AE", "GI", "IL", "IQ", "TL"], 23),
    **dict.fromkeys(["AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"], 24),
    **dict.fromkeys(["PT", "ST"], 25),
    **dict.fromkeys(["IS", "TR"], 26),
    **dict.fromkeys(["FR", "GR", "IT", "MC", "MR", "SM"], 27),
    **dict.fromkeys(["AL", "AZ", "BY", "CY", "DO", "GT", "HU", "LB", "PL", "SV"], 28),
    **dict.fromkeys(["BR", "EG", "PS", "QA", "UA"], 29),
    **dict.fromkeys(["JO", "KW", "MU"], 30),
    **dict.fromkeys(["MT", "SC"], 31),
    **dict.fromkeys(["LC"], 32),
}


def _digit_count(text: str) -> int:
    return sum(character.isdigit() for character in text)


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for pattern, group, fewest, most in _PHONE:
        for match in pattern.finditer(text):
            if fewest <= _digit_count(match.group(group)) <= most:
                yield match.span(group)


def _emails(text: str) -> Iterator[tuple[int, int]]:
    if "@" in text:
        yield from (match.span() for match in _EMAIL.finditer(text))


def _ip_addresses(text: str) -> Iterator[tuple[int, int]]:
    for match in _IPV4.finditer(text):
        octets = match.group().split(".")
        if _VERSION_BEFORE.search(text, max(0, match.start() - 10), match.start()):
            continue
        if all(int(octet) <= 255 and (octet == "0" or not octet.startswith("0")) for octet in octets):
            yield match.span()
    if "::" in text or text.count(":") >= 7:
        for match in _IPV6.finditer(text):
            candidate = match.group()
            if sum(1 for group in candidate.split(":") if group) < 2:
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield match.span()


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card_issuer_plausible(digits: str) -> bool:
    """Whether the leading digits and length fit a major card network (Visa, Mastercard, Amex,
    Discover, Diners, JCB, UnionPay, Maestro)."""
    length, two, four, six = len(digits), int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4":
        return length in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return length == 16
    if two in (34, 37):
        return length == 15
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= length <= 19
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= length <= 19
    if 3528 <= four <= 3589 or two == 62:
        return 16 <= length <= 19
    return four in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763) and 13 <= length <= 19


def _credit_cards(text: str) -> Iterator[tuple[int, int]]:
    """Card numbers; within a run of digit groups, the longest then earliest valid run of whole groups."""
    for match in _CARD.finditer(text):
        bounds = [(m.start(), m.end()) for m in re.finditer(r"\d+", match.group())]
        runs = sorted(
            ((first, last) for first in range(len(bounds)) for last in range(first, len(bounds))),
            key=lambda run: (run[0] - run[1], run[0]),
        )
        for first, last in runs:
            start, end = bounds[first][0], bounds[last][1]
            digits = _GROUP_SEPARATOR.sub("", match.group()[start:end])
            if 13 <= len(digits) <= 19 and _card_issuer_plausible(digits) and _luhn_valid(digits):
                yield match.start() + start, match.start() + end
                break


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    """IBANs of the registered length for their country whose check digits pass mod-97. After a
    candidate fails, the search resumes inside it, at the next token."""
    position = 0
    while match := _IBAN.search(text, position):
        span = _iban_span(match.group())
        if span is None:
            position = match.start() + 1
            continue
        position = match.start() + span
        yield match.start(), position


def _iban_span(candidate: str) -> int | None:
    """The length of the IBAN that `candidate` starts with, or None."""
    length = _IBAN_LENGTHS.get(candidate[:2])
    if length is None:
        return None
    kept = end = 0
    while kept < length and end < len(candidate):
        kept += candidate[end] != " "
        end += 1
    if kept < length or (end < len(candidate) and candidate[end] != " "):
        return None
    compact = candidate[:end].replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return end if int("".join(str(int(character, 36)) for character in rearranged)) % 97 == 1 else None


def _us_ssns(text: str) -> Iterator[tuple[int, int]]:
    yield from (match.span() for match in _SSN.finditer(text))


_FINDERS: dict[str, Callable[[str], Iterator[tuple[int, int]]]] = {
    "email": _emails,
    "iban": _ibans,
    "credit_card": _credit_cards,
    "us_ssn": _us_ssns,
    "ip_address": _ip_addresses,
    "phone": _phones,
}
_DIGIT_KINDS = frozenset(KINDS) - {"email"}
_HAS_DIGIT = re.compile(r"\d")


def find_pii(text: str, kinds: Collection[str] = KINDS) -> list[PIISpan]:
    """Non-overlapping finds of the given kinds in `text`, in text order."""
    has_digit = _HAS_DIGIT.search(text) is not None
    candidates = [
        PIISpan(start, end, kind)
        for kind in KINDS
        if kind in kinds and (has_digit or kind not in _DIGIT_KINDS)
        for start, end in _FINDERS[kind](text)
    ]
    rank = {kind: position for position, kind in enumerate(KINDS)}
    candidates.sort(key=lambda span: (span.start - span.end, span.start, rank[span.kind]))
    starts: list[int] = []
    chosen: list[PIISpan] = []
    for span in candidates:
        index = bisect.bisect_right(starts, span.start)
        if index > 0 and chosen[index - 1].end > span.start:
            continue
        if index < len(chosen) and chosen[index].start < span.end:
            continue
        starts.insert(index, span.start)
        chosen.insert(index, span)
    return chosen


def redact(text: str, spans: list[PIISpan], placeholders: dict[str, str]) -> str:
    """`text` with each span (in text order, not overlapping) replaced by its kind's placeholder."""
    parts: list[str] = []
    position = 0
    for span in spans:
        parts += [text[position : span.start], placeholders[span.kind]]
        position = span.end
    parts.append(text[position:])
    return "".join(parts)


class PII(Filter):
    """Counts personal-data spans (`pii_redacted`) and names their kinds (`pii_kinds`); by default
    replaces each with a placeholder, with `action: reject` rejects texts holding any (`filter.pii.found`)."""

    name = "pii"
    reads_text = True
    score_fields: ClassVar = [pa.field("pii_redacted", pa.int32()), pa.field("pii_kinds", pa.string())]
    rewrites_columns: ClassVar = ("text",)

    def __init__(self, settings: PIISettings) -> None:
        self.settings = settings
        self.kinds = frozenset(settings.kinds)
        self.placeholders = {kind: settings.placeholder.format(kind=kind.upper()) for kind in KINDS}

    def evaluate(self, table: pa.Table) -> Verdicts:
        action = self.settings.action
        counts: list[object] = []
        kinds: list[object] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        texts: list[object] = []
        for text in table["text"].to_pylist():
            spans = find_pii(text, self.kinds) if text else []
            found = sorted({span.kind for span in spans})
            counts.append(len(spans))
            kinds.append(",".join(found) or None)
            rejected = action == "reject" and bool(spans)
            reasons.append(self.code("found") if rejected else None)
            details.append(f"{len(spans)} personal-data spans ({', '.join(found)})" if rejected else None)
            texts.append(redact(text, spans, self.placeholders) if spans else text)
        rewrites = {"text": texts} if action == "redact" else {}
        return Verdicts({"pii_redacted": counts, "pii_kinds": kinds}, reasons, details, rewrites)
