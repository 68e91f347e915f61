"""Tests of curation_dagster/filters/pii.py: what each kind finds and does not find, exact redactions,
the reject and tag actions, and overlap resolution."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation_dagster.filters.base import FilterChain
from curation_dagster.filters.pii import PII, find_pii
from curation_dagster.spec import PIISettings

REDACT = PII(PIISettings())


def texts(*values: str | None) -> pa.Table:
    return pa.table({"text": pa.array(values, pa.large_string())})


def redacted(text: str) -> str:
    (value,) = REDACT.evaluate(texts(text)).rewrites["text"]
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to john.doe+news@example.co.uk.", "Write to <EMAIL>."),
        ("Call +1 (555) 123-4567 now", "Call <PHONE> now"),
        ("Ring +44 20 7946 0958 or +33 6 12 34 56 78", "Ring <PHONE> or <PHONE>"),
        ("Office: (555) 123-4567, cell 555.123.4567", "Office: <PHONE>, cell <PHONE>"),
        ("Büro 030 12345678, mobil 0171/2345678", "Büro <PHONE>, mobil <PHONE>"),
        ("Appelez le 06 12 34 56 78 ou llame al 612 34 56 78", "Appelez le <PHONE> ou llame al <PHONE>"),
        ("Tel.: 0301234567", "Tel.: <PHONE>"),
        ("Host 192.168.0.1 answered", "Host <IP_ADDRESS> answered"),
        ("Host 2001:db8::8a2e:370:7334 and ::ffff:192.0.2.1", "Host <IP_ADDRESS> and <IP_ADDRESS>"),
        ("Card 4111 1111 1111 1111 exp 12/27", "Card <CREDIT_CARD> exp 12/27"),
        ("Amex 378282246310005, MC 5555-5555-5555-4444", "Amex <CREDIT_CARD>, MC <CREDIT_CARD>"),
        ("Card 4111 1111 1111 1111 2024 on file", "Card <CREDIT_CARD> 2024 on file"),
        ("IBAN DE89 3704 0044 0532 0130 00, thanks", "IBAN <IBAN>, thanks"),
        ("Pay GB82 WEST 1234 5698 7654 32 or FR1420041010050500013M02606", "Pay <IBAN> or <IBAN>"),
        ("Ref AB12 DE89 3704 0044 0532 0130 00", "Ref AB12 <IBAN>"),
        ("SSN 078-05-1120 on the form", "SSN <US_SSN> on the form"),
    ],
)
def test_redaction_replaces_each_span_with_its_kind(text: str, expected: str) -> None:
    assert redacted(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2024-01-15 as version 3.11.7 (build 3.11.7.1).",
        "Dates 15.01.2024, 01/02/2024 and 05/01/2024 12:30; years 1999 2000 2001.",
        "Order 20240115123456, invoice 1234567890, ISBN 978-0-306-40615-7.",
        "A population of 1 200 000 and a score of +5 10.",
        "Not an address: 999.1.1.1, 1.2.3, 192.168.01.1.",
        "Times 10:30:00, loopback ::1, C++ std::vector, MAC 00:1a:2b:3c:4d:5e.",
        "Luhn-invalid 4111 1111 1111 1112 and 4111111111111112.",
        "Luhn-valid but no issuer: 1234 5678 9012 3452.",
        "Wrong check digits DE88 3704 0044 0532 0130 00.",
        "Too long DE89370400440532013000123.",
        "Invalid SSNs 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000.",
        "user at example dot com, @handle, a@b",
    ],
)
def test_look_alikes_are_not_personal_data(text: str) -> None:
    verdicts = REDACT.evaluate(texts(text))

    assert verdicts.scores == {"pii_redacted": [0], "pii_kinds": [None]}
    assert verdicts.rewrites["text"] == [text]


def test_counts_every_span_and_names_the_kinds_sorted() -> None:
    text = "a@example.org, b@example.org, +49 30 1234567, 10.0.0.1"

    verdicts = REDACT.evaluate(texts(text))

    assert verdicts.scores == {"pii_redacted": [4], "pii_kinds": ["email,ip_address,phone"]}
    assert verdicts.reasons == [None]


def test_reject_action_rejects_with_pii_found_and_leaves_text_alone() -> None:
    reject = PII(PIISettings(action="reject"))

    verdicts = reject.evaluate(texts("mail a@example.org or call +1 555 123 4567", "nothing here"))

    assert verdicts.reasons == ["filter.pii.found", None]
    assert verdicts.details == ["2 personal-data spans (email, phone)", None]
    assert verdicts.scores["pii_redacted"] == [2, 0]
    assert verdicts.rewrites == {}


def test_tag_action_counts_without_rejecting_or_rewriting() -> None:
    verdicts = PII(PIISettings(action="tag")).evaluate(texts("SSN 078-05-1120"))

    assert verdicts.scores == {"pii_redacted": [1], "pii_kinds": ["us_ssn"]}
    assert verdicts.reasons == [None]
    assert verdicts.rewrites == {}


def test_only_the_configured_kinds_are_found() -> None:
    emails_only = PII(PIISettings(kinds=("email",)))

    verdicts = emails_only.evaluate(texts("a@example.org, +49 30 1234567, 10.0.0.1"))

    assert verdicts.rewrites["text"] == ["<EMAIL>, +49 30 1234567, 10.0.0.1"]
    assert verdicts.scores["pii_kinds"] == ["email"]


def test_placeholder_takes_the_upper_case_kind() -> None:
    verdicts = PII(PIISettings(placeholder="[{kind} removed]")).evaluate(texts("card 4111111111111111"))

    assert verdicts.rewrites["text"] == ["card [CREDIT_CARD removed]"]


def test_none_and_empty_text_have_no_spans_and_stay_as_they_are() -> None:
    verdicts = REDACT.evaluate(texts(None, ""))

    assert verdicts.scores == {"pii_redacted": [0, 0], "pii_kinds": [None, None]}
    assert verdicts.rewrites["text"] == [None, ""]


def test_overlapping_finds_keep_the_longest() -> None:
    # "0532 0130 00" inside the IBAN also looks like a German phone number.
    spans = find_pii("DE89 3704 0044 0532 0130 00")

    assert [(span.start, span.end, span.kind) for span in spans] == [(0, 27, "iban")]


def test_international_phone_wins_over_the_national_number_inside_it() -> None:
    assert redacted("+1 555-123-4567") == "<PHONE>"


def test_enormous_text_is_scanned_to_the_end() -> None:
    text = "1" * 1_000_000 + " " + "a" * 1_000_000 + " x@example.org"

    spans = find_pii(text)

    assert [(span.start, span.kind) for span in spans] == [(2_000_002, "email")]


def test_in_a_chain_later_filters_and_the_kept_rows_see_the_redacted_text() -> None:
    chain = FilterChain({"text": [PII(PIISettings())]})
    table = pa.table({"modality": ["text"], "text": pa.array(["ip 10.0.0.1"], pa.large_string())})

    kept, rejected = chain.run(table)

    assert kept["text"].to_pylist() == ["ip <IP_ADDRESS>"]
    assert kept.schema.field("pii_redacted").type == pa.int32()
    assert kept["pii_kinds"].to_pylist() == ["ip_address"]
    assert rejected.num_rows == 0
