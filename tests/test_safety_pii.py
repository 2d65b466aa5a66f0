"""PIIDetector: each type found in its usual and odd spellings, look-alikes left alone, custom
patterns, overlaps, redaction, and contains() agreeing with find()."""

from __future__ import annotations

import itertools
import re

import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.errors import ConfigError
from thrifty.safety.pii import Finding, PIIDetector, PIIMode, PIIType

DETECTOR = PIIDetector()


def kinds(text: str, detector: PIIDetector = DETECTOR) -> list[tuple[str, str]]:
    return [(f.type, f.text) for f in detector.find(text)]


POSITIVES = [
    # e-mail
    ("write to jane.doe@example.com please", PIIType.EMAIL, "jane.doe@example.com"),
    (
        "JOHN.SMITH+TAG@MAIL.EXAMPLE.CO.UK is mine",
        PIIType.EMAIL,
        "JOHN.SMITH+TAG@MAIL.EXAMPLE.CO.UK",
    ),
    ("邮箱lzhao@example.cn谢谢", PIIType.EMAIL, "lzhao@example.cn"),
    # phone: international, national with punctuation, bare valid numbers, extensions
    ("call +44 20 7946 0958 today", PIIType.PHONE, "+44 20 7946 0958"),
    ("ring (415) 555-2671", PIIType.PHONE, "(415) 555-2671"),
    ("tel 206.269.0743x9150", PIIType.PHONE, "206.269.0743x9150"),
    ("mobile +49 (0) 30 901820", PIIType.PHONE, "+49 (0) 30 901820"),
    ("appelez le 01 23 45 67 89", PIIType.PHONE, "01 23 45 67 89"),
    ("我的手机号是13812345678", PIIType.PHONE, "13812345678"),
    ("whatsapp +91 98765 43210", PIIType.PHONE, "+91 98765 43210"),
    ("my number is 4155552671", PIIType.PHONE, "4155552671"),
    # payment cards, grouped or not
    ("card 4111 1111 1111 1111 exp 12/27", PIIType.CARD, "4111 1111 1111 1111"),
    ("card 4111-1111-1111-1111", PIIType.CARD, "4111-1111-1111-1111"),
    ("amex 378282246310005", PIIType.CARD, "378282246310005"),
    ("amex 3782 822463 10005", PIIType.CARD, "3782 822463 10005"),
    ("mc 5555555555554444.", PIIType.CARD, "5555555555554444"),
    # IBANs: compact, grouped, lower-case
    ("IBAN DE89370400440532013000", PIIType.IBAN, "DE89370400440532013000"),
    ("iban gb82 west 1234 5698 7654 32 thanks", PIIType.IBAN, "gb82 west 1234 5698 7654 32"),
    ("FR14 2004 1010 0505 0001 3M02 606", PIIType.IBAN, "FR14 2004 1010 0505 0001 3M02 606"),
    # US SSN: formatted, or bare after the word
    ("my ssn is 123-45-6789", PIIType.SSN, "123-45-6789"),
    ("social security number: 123456789", PIIType.SSN, "123456789"),
    # Chinese resident ID, with an upper or lower check letter, inside Chinese text
    ("身份证号11010519491231002X。", PIIType.CN_ID, "11010519491231002X"),
    ("id 11010519491231002x", PIIType.CN_ID, "11010519491231002x"),
    # IP addresses
    ("server 192.168.10.1 is down", PIIType.IP, "192.168.10.1"),
    ("from 203.0.113.7.", PIIType.IP, "203.0.113.7"),
    ("addr 2001:db8:85a3::8a2e:370:7334 ok", PIIType.IP, "2001:db8:85a3::8a2e:370:7334"),
    ("link-local FE80::1FF:FE23:4567:890A", PIIType.IP, "FE80::1FF:FE23:4567:890A"),
    ("mapped ::ffff:192.0.2.128 here", PIIType.IP, "::ffff:192.0.2.128"),
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES, ids=[p[0] for p in POSITIVES])
def test_each_type_is_found_in_its_spellings(text: str, kind: PIIType, value: str) -> None:
    assert kinds(text) == [(kind.value, value)]
    assert DETECTOR.contains(text)


NEGATIVES = [
    "how can I cancel purchase 113542617735902?",
    "i want assistance to cancel purchase 732201349959",
    "cancel order #00004587345 please",
    "I don't know how I can see my bill #00108",
    "invoice INV-2024-00123 is wrong",
    "tracking 1Z999AA10123456784 and USPS 9400 1000 0000 0000 0000 00",
    "barcode 4006381333931 on the box",  # EAN-13, fails Luhn
    "it arrived on 2024-03-12, or 12/03/2024, at 12:30:45",
    "it cost $1,499.00 or 1499 dollars, $1499 452 in total",
    "update to version 1.2.3.4 or build v10.0.19041.1",
    "ssn 000-12-3456 and 666-12-3456 and 900-12-3456 are never issued",
    "123-00-4567 and 123-45-0000 are not SSNs either",
    "a random 9-digit run 123456789 is not an SSN without the word",
    "card 4111 1111 1111 1112 fails Luhn",
    "1234 5678 9012 3456 is no issuer's range",
    "DE89370400440532013001 has a bad checksum",
    "11010519491231002Y is no check character, 110105194913310021 no date",
    "999.1.1.1 and 1.2.3 are not addresses; mac 00:1a:2b:3c:4d:5e; time 12:30",
    "mention @support or user@localhost",
    "order 2 items, 3 boxes, 500 g",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_not_pii(text: str) -> None:
    assert DETECTOR.find(text) == []
    assert not DETECTOR.contains(text)


def test_clean_support_questions_are_clean() -> None:
    for text in (
        "How do I reset my password?",
        "what are your payment methods",
        "I want a refund for the broken blender",
        "",
    ):
        assert not DETECTOR.contains(text)
        assert DETECTOR.redact(text) is text


def test_findings_are_ordered_and_do_not_overlap() -> None:
    text = "mail a.b5551234567@example.com, iban DE89370400440532013000, call +1 415 555 2671"
    found = DETECTOR.find(text)
    assert [f.type for f in found] == ["email", "iban", "phone"]
    for f in found:
        assert text[f.start : f.end] == f.text
    # the e-mail's digits are not also a phone, the IBAN's digits not also a card
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 12 items", [("card", "4111 1111 1111 1111")]),
        ("purchase 113542617735902 01 23 45 67 89", [("phone", "01 23 45 67 89")]),
        ("see bill #85632 06 12 65 99 14", [("phone", "06 12 65 99 14")]),
        ("my bill #12588 (415)555-2671", [("phone", "(415)555-2671")]),
        (
            "iban GB82 WEST 1234 5698 7654 32 06 12 36 39 47",
            [("iban", "GB82 WEST 1234 5698 7654 32"), ("phone", "06 12 36 39 47")],
        ),
        ("from 10.1.2.3 07 86 11 86 16", [("ip", "10.1.2.3"), ("phone", "07 86 11 86 16")]),
        ("call +33 4 34 35 84 47 2358 dollars", [("phone", "+33 4 34 35 84 47")]),
        (
            "+33 6 12 24 35 32 - 0161 4960399 - where",
            [("phone", "+33 6 12 24 35 32"), ("phone", "0161 4960399")],
        ),
    ],
)
def test_a_number_beside_another_still_counts(text: str, expected: list) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "USPS 9400 1550 0591 9696 3772 19",  # blocks of four: no phone inside a tracking number
        "order #2024 0591 9696",
        "tracking number 0412 345 678",
        "the account number 0121 652 2533",
    ],
)
def test_no_phone_inside_identifiers(text: str) -> None:
    assert kinds(text) == []


def test_phone_words_relax_the_number_plan() -> None:
    # 589 is no US area code: a bare run needs a valid number, unless the text says "phone"
    assert not DETECTOR.contains("refunds 5891126835")
    assert kinds("(phone: 5891126835)") == [("phone", "5891126835")]
    assert kinds("我的手机号是14956842393") == [("phone", "14956842393")]
    assert kinds("Germany +49(0) 596392138") == [("phone", "+49(0) 596392138")]


def test_barcodes_are_not_cards_but_order_numbers_may_be() -> None:
    assert not DETECTOR.contains("barcode 4006381333932")  # Luhn-valid EAN-13 after "barcode"
    assert DETECTOR.contains("4006381333932")  # a 13-digit Visa, as far as anyone can tell
    assert kinds("order 4111111111111111") == [("card", "4111111111111111")]


def test_redact_writes_typed_placeholders() -> None:
    text = "I'm jane@example.com, +44 20 7946 0958, card 4111111111111111, ip 10.0.0.1."
    assert DETECTOR.redact(text) == "I'm [EMAIL], [PHONE], card [CARD], ip [IP]."
    assert Finding("cn_id", 0, 1, "x").placeholder == "[CN_ID]"


def test_custom_patterns_add_their_own_types() -> None:
    detector = PIIDetector(custom={"employee_id": r"\bEMP-\d{6}\b", "ticket": re.compile("T#\\d+")})
    text = "emp EMP-123456 opened T#77 from bob@example.com"
    assert kinds(text, detector) == [
        ("employee_id", "EMP-123456"),
        ("ticket", "T#77"),
        ("email", "bob@example.com"),
    ]
    assert detector.redact(text) == "emp [EMPLOYEE_ID] opened [TICKET] from [EMAIL]"
    assert detector.contains("just EMP-000001")
    assert not detector.contains("EMP-1 is too short")


def test_types_narrow_what_is_looked_for() -> None:
    detector = PIIDetector(types=["email"])
    assert kinds("a@example.com +44 20 7946 0958", detector) == [("email", "a@example.com")]
    assert not detector.contains("+44 20 7946 0958")
    only_custom = PIIDetector(types=[], custom={"secret": "s3cr3t"})
    assert kinds("s3cr3t a@example.com", only_custom) == [("secret", "s3cr3t")]


def test_regions_decide_which_national_numbers_count() -> None:
    text = "我的电话 13812345678"  # a Chinese mobile, written nationally
    assert PIIDetector(regions=["CN"]).contains(text)
    assert not PIIDetector(regions=["GB"]).contains(text)
    # an international number counts whatever the regions
    assert PIIDetector(regions=["GB"]).contains("+86 138 1234 5678")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"types": ["passport"]}, "unknown PII type"),
        ({"custom": {"email": "x"}}, "shadows a built-in"),
        ({"custom": {"bad": "("}}, "does not compile"),
        ({"regions": ["US", "XX"]}, "unknown phone regions"),
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PIIDetector(**kwargs)


def test_mode_values_are_the_config_values() -> None:
    assert [m.value for m in PIIMode] == ["off", "skip_store", "redact"]
    assert PIIMode("skip_store") is PIIMode.SKIP_STORE


@pytest.mark.parametrize("locale", ["en_US", "en_GB", "de_DE", "fr_FR", "zh_CN", "en_IN"])
def test_generated_records_are_found_in_every_locale(locale: str) -> None:
    fake = Faker(locale)
    fake.seed_instance(2026)
    for _ in range(25):
        values = {
            PIIType.EMAIL: fake.email(),
            PIIType.CARD: fake.credit_card_number(),
            PIIType.IBAN: fake.iban(),
            PIIType.IP: fake.ipv4_public(),
        }
        for kind, value in values.items():
            text = f"Hello, my {kind} is {value}, thanks"
            assert (kind.value, value) in kinds(text), text


def test_contains_agrees_with_find() -> None:
    fake = Faker("en_US")
    fake.seed_instance(7)
    texts = [*NEGATIVES, *(p[0] for p in POSITIVES)]
    texts += [
        f"order {fake.random_number(digits=12)} from {fake.phone_number()}" for _ in range(50)
    ]
    for text in texts:
        assert DETECTOR.contains(text) == bool(DETECTOR.find(text)), text


PII_ALPHABET = "0123456789 +-()./@:#xXabcdefGBDE\n"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=PII_ALPHABET, max_size=80) | st.text(max_size=80))
def test_findings_are_consistent_on_any_text(text: str) -> None:
    found = DETECTOR.find(text)
    assert DETECTOR.contains(text) == bool(found)
    for f in found:
        assert text[f.start : f.end] == f.text and f.end > f.start
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    redacted = DETECTOR.redact(text)
    assert len(redacted) == len(text) + sum(len(f.placeholder) - len(f.text) for f in found)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=PII_ALPHABET, max_size=80))
def test_redacted_text_holds_no_pii(text: str) -> None:
    assert DETECTOR.find(DETECTOR.redact(text)) == []
