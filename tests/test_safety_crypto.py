"""Keyring: round trips, rotation, tamper and wrong-AAD detection, unknown keys, key parsing and
keyed identifier hashing."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.errors import ConfigError, ThriftyError
from thrifty.safety.crypto import Key, Keyring, is_encrypted, parse_secret
from thrifty.safety.errors import CryptoError, DecryptError, KeyConfigError, UnknownKeyError

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(32, 64))
AAD = b"thrifty:v1:ns:4f9a"


def ring(*keys: tuple[str, bytes]) -> Keyring:
    current, *old = (Key(kid, secret) for kid, secret in keys)
    return Keyring(current, old)


@pytest.mark.parametrize("size", [0, 1, 1024, 16 * 1024, 1 << 20])
def test_round_trip(size: int) -> None:
    keyring = ring(("a", SECRET_A))
    plaintext = os.urandom(size)
    blob = keyring.encrypt(plaintext, AAD)
    assert is_encrypted(blob)
    assert plaintext not in blob or size < 4
    assert keyring.decrypt(blob, AAD) == plaintext
    assert len(blob) == len(plaintext) + 4 + 1 + 1 + 12 + 16  # header, id "a", nonce, tag


def test_every_blob_has_its_own_nonce() -> None:
    keyring = ring(("a", SECRET_A))
    assert keyring.encrypt(b"same", AAD) != keyring.encrypt(b"same", AAD)


def test_plain_payloads_are_not_taken_for_blobs() -> None:
    for plain in (b"t1{...}", b'{"a": 1}', b"", b"\x00", "héllo".encode()):
        assert not is_encrypted(plain)
    with pytest.raises(DecryptError, match="not a sealed blob"):
        ring(("a", SECRET_A)).decrypt(b't1{"a": 1}', AAD)


def test_wrong_aad_fails_so_a_blob_cannot_move_to_another_key() -> None:
    keyring = ring(("a", SECRET_A))
    blob = keyring.encrypt(b"answer for question 1", AAD)
    with pytest.raises(DecryptError, match="authentication failed"):
        keyring.decrypt(blob, b"thrifty:v1:ns:other")
    with pytest.raises(DecryptError):
        keyring.decrypt(blob)


@pytest.mark.parametrize("position", [3, 4, 5, 6, 10, 20, -1, -17])
def test_any_flipped_byte_is_detected(position: int) -> None:
    keyring = ring(("a", SECRET_A))
    blob = bytearray(keyring.encrypt(b"x" * 64, AAD))
    blob[position] ^= 0x01
    with pytest.raises(CryptoError):  # version, key id, nonce, body and tag are all covered
        keyring.decrypt(bytes(blob), AAD)


def test_truncated_blobs_fail_cleanly() -> None:
    keyring = ring(("a", SECRET_A))
    blob = keyring.encrypt(b"payload", AAD)
    for end in range(3, len(blob)):
        with pytest.raises(CryptoError):
            keyring.decrypt(blob[:end], AAD)


def test_same_id_other_secret_fails_authentication() -> None:
    blob = ring(("k", SECRET_A)).encrypt(b"payload", AAD)
    with pytest.raises(DecryptError):
        ring(("k", SECRET_B)).decrypt(blob, AAD)


def test_unknown_key_id_is_its_own_error() -> None:
    blob = ring(("old", SECRET_A)).encrypt(b"payload", AAD)
    with pytest.raises(UnknownKeyError) as info:
        ring(("new", SECRET_B)).decrypt(blob, AAD)
    assert info.value.key_id == "old"
    assert info.value.known == ("new",)
    assert isinstance(info.value, ThriftyError)


def test_rotation_keeps_old_blobs_readable_and_reencrypts() -> None:
    old_ring = ring(("2025", SECRET_A))
    old_blob = old_ring.encrypt(b"cached answer", AAD)
    new_ring = old_ring.rotate(Key("2026", SECRET_B))
    assert new_ring.key_ids == ("2026", "2025")
    assert new_ring.decrypt(old_blob, AAD) == b"cached answer"
    assert new_ring.needs_rotation(old_blob)
    moved = new_ring.reencrypt(old_blob, AAD)
    assert new_ring.key_id_of(moved) == "2026"
    assert not new_ring.needs_rotation(moved)
    assert new_ring.reencrypt(moved, AAD) is moved
    assert new_ring.decrypt(moved, AAD) == b"cached answer"
    with pytest.raises(UnknownKeyError):  # the old ring cannot read what the new key sealed
        old_ring.decrypt(moved, AAD)
    with pytest.raises(DecryptError):  # reencrypt still checks the AAD
        new_ring.reencrypt(old_blob, b"another key")


def test_duplicate_key_ids_are_refused() -> None:
    with pytest.raises(KeyConfigError, match="duplicate"):
        ring(("a", SECRET_A), ("a", SECRET_B))


def test_secrets_parse_from_hex_and_base64() -> None:
    b64 = base64.b64encode(SECRET_A).decode()
    for text in (
        SECRET_A.hex(),
        "hex:" + SECRET_A.hex().upper(),
        b64,
        "base64:" + b64,
        base64.urlsafe_b64encode(SECRET_A).decode().rstrip("="),
        f"  {b64}\n",
    ):
        assert parse_secret(text) == SECRET_A, text


@pytest.mark.parametrize("text", ["", "hex:abcd", "not base64 at all!", "base64:" + "A" * 40])
def test_bad_secrets_are_config_errors(text: str) -> None:
    with pytest.raises(KeyConfigError):
        parse_secret(text)
    assert issubclass(KeyConfigError, ConfigError)


def test_key_specs_with_and_without_id() -> None:
    b64 = base64.b64encode(SECRET_A).decode()
    assert Key.parse(f"primary:{b64}") == Key("primary", SECRET_A)
    assert Key.parse(f"k2:hex:{SECRET_A.hex()}").id == "k2"
    fingerprint = Key.parse(b64).id
    assert len(fingerprint) == 8
    assert Key.parse(SECRET_A.hex()).id == fingerprint  # the same secret, the same id
    assert Key.parse(base64.b64encode(SECRET_B).decode()).id != fingerprint
    assert repr(SECRET_A) not in repr(Key("a", SECRET_A))  # secrets stay out of logs
    with pytest.raises(KeyConfigError):
        Key("bad id!", SECRET_A)
    with pytest.raises(KeyConfigError):
        Key("a", b"short")


def test_from_config() -> None:
    keyring = Keyring.from_config(
        "new:" + base64.b64encode(SECRET_B).decode(), ["old:hex:" + SECRET_A.hex()]
    )
    assert keyring.current_id == "new"
    assert keyring.key_ids == ("new", "old")


def test_hash_identifier_is_keyed_stable_and_rotation_aware() -> None:
    a, b = ring(("a", SECRET_A)), ring(("b", SECRET_B))
    digest = a.hash_identifier("user-42@example.com")
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert digest == ring(("a", SECRET_A)).hash_identifier("user-42@example.com")
    assert digest != a.hash_identifier("user-43@example.com")
    assert digest != b.hash_identifier("user-42@example.com")  # no key, no guessing
    assert "user-42" not in digest
    rotated = a.rotate(Key("b", SECRET_B))
    assert rotated.identifier_hashes("user-42@example.com") == (
        b.hash_identifier("user-42@example.com"),
        digest,
    )


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=80))
def test_any_payload_and_aad_round_trip(plaintext: bytes, aad: bytes) -> None:
    keyring = ring(("a", SECRET_A))
    assert keyring.decrypt(keyring.encrypt(plaintext, aad), aad) == plaintext


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=256), data=st.data())
def test_any_changed_byte_is_refused(plaintext: bytes, data: st.DataObject) -> None:
    keyring = ring(("a", SECRET_A), ("b", SECRET_B))
    blob = bytearray(keyring.encrypt(plaintext, AAD))
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CryptoError):
        keyring.decrypt(bytes(blob), AAD)
