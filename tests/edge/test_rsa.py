"""RSA public-key loading from JWK and PEM, and PKCS#1 v1.5 verification."""

from __future__ import annotations

import pytest

from edge.rsa import KeyFormatError, load_rsa_public_key
from tests.tokens import public_jwk, rsa_keys


class TestLoading:
    def test_jwk_spki_and_pkcs1_agree(self) -> None:
        """The same key read from a JWK, an SPKI PEM and a PKCS#1 PEM gives the same (n, e)."""
        key = rsa_keys()["keys"]["a"]
        loaded = {load_rsa_public_key(public_jwk("a")), load_rsa_public_key(key["pem"]),
                  load_rsa_public_key(key["pkcs1_pem"])}
        assert len(loaded) == 1
        assert next(iter(loaded)).e == 65537

    @pytest.mark.parametrize("source, message", [
        ({"kty": "EC", "x": "a"}, "kty"),
        ({"kty": "RSA", "n": "AQAB"}, "'n' and 'e'"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "2048"),
        ("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----", "base64"),
        ("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----", "DER|SEQUENCE|truncated"),
        ("ssh-rsa AAAA", "JWK object or a PEM"),
    ])
    def test_bad_keys_name_the_problem(self, source: object, message: str) -> None:
        """Each unreadable key fails with a KeyFormatError that says what is wrong."""
        with pytest.raises(KeyFormatError, match=message):
            load_rsa_public_key(source)  # type: ignore[arg-type]

    def test_truncated_spki(self) -> None:
        """A PEM whose DER is cut short is reported as truncated, not as an IndexError."""
        pem = rsa_keys()["keys"]["a"]["pem"].splitlines()
        cut = "\n".join([pem[0], *pem[1:4], pem[-1]])
        with pytest.raises(KeyFormatError):
            load_rsa_public_key(cut)


class TestVerify:
    def test_wrong_length_signature_fails(self) -> None:
        """A signature of the wrong length is refused without exponentiation."""
        key = load_rsa_public_key(public_jwk("a"))
        assert not key.verify_sha256(b"message", b"\x00" * 10)

    def test_signature_over_other_message_fails(self) -> None:
        """A valid signature does not verify a different message."""
        from tests.tokens import mint

        token = mint({"x": 1}, alg="RS256")
        head, payload, sig = token.split(".")
        from edge.rsa import b64url_decode

        key = load_rsa_public_key(public_jwk("a"))
        assert key.verify_sha256(f"{head}.{payload}".encode(), b64url_decode(sig))
        assert not key.verify_sha256(f"{head}.{payload}x".encode(), b64url_decode(sig))
