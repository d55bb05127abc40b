"""RSA public keys and RSASSA-PKCS1-v1_5 / SHA-256 verification in pure Python (RFC 8017 §8.2.2).

The edge runs where no `cryptography` wheel exists (Pyodide), and verification needs only one
modular exponentiation, which Python's big integers do fast enough (~0.2 ms for 2048 bits).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

# DER of DigestInfo{ AlgorithmIdentifier{ sha256, NULL }, OCTET STRING(32) } (RFC 8017 §9.2 note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")


class KeyFormatError(ValueError):
    """A public key that cannot be read; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class RsaPublicKey:
    n: int
    e: int

    @property
    def size_bytes(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def verify_sha256(self, message: bytes, signature: bytes) -> bool:
        k = self.size_bytes
        if len(signature) != k or k < 256:  # RFC 7518 §3.3: RS256 keys must be at least 2048 bits
            return False
        s = int.from_bytes(signature, "big")
        if s >= self.n:
            return False
        em = pow(s, self.e, self.n).to_bytes(k, "big")
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        return hmac.compare_digest(em, expected)


def load_rsa_public_key(source: str | dict[str, Any]) -> RsaPublicKey:
    """From a JWK (dict with kty=RSA, n, e) or PEM text (SPKI "PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY")."""
    if isinstance(source, dict):
        if source.get("kty") != "RSA":
            raise KeyFormatError("JWK must have kty 'RSA'")
        try:
            n = int.from_bytes(b64url_decode(source["n"]), "big")
            e = int.from_bytes(b64url_decode(source["e"]), "big")
        except (KeyError, ValueError) as exc:
            raise KeyFormatError("JWK must carry base64url 'n' and 'e'") from exc
        return _checked(n, e)
    text = source.strip()
    for label, spki in (("PUBLIC KEY", True), ("RSA PUBLIC KEY", False)):
        begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
        if text.startswith(begin) and end in text:
            body = "".join(text[len(begin):text.index(end)].split())
            try:
                der = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise KeyFormatError(f"PEM {label} body is not valid base64") from exc
            return _from_spki(der) if spki else _from_pkcs1(der)
    raise KeyFormatError("expected a JWK object or a PEM 'PUBLIC KEY' / 'RSA PUBLIC KEY' block")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("base64url value must be a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64url") from exc


def _checked(n: int, e: int) -> RsaPublicKey:
    if n.bit_length() < 2048:
        raise KeyFormatError(f"RSA modulus is {n.bit_length()} bits; RS256 needs at least 2048")
    if e < 3 or e % 2 == 0:
        raise KeyFormatError("RSA exponent must be odd and at least 3")
    return RsaPublicKey(n, e)


def _read_tlv(der: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, content, position after it)."""
    try:
        tag = der[pos]
        length = der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 4:
                raise KeyFormatError("DER length field is malformed")
            length = int.from_bytes(der[pos:pos + count], "big")
            pos += count
    except IndexError as exc:
        raise KeyFormatError("DER data is truncated") from exc
    end = pos + length
    if end > len(der):
        raise KeyFormatError("DER data is truncated")
    return tag, der[pos:end], end


def _from_pkcs1(der: bytes) -> RsaPublicKey:
    tag, seq, _ = _read_tlv(der, 0)
    if tag != 0x30:
        raise KeyFormatError("RSAPublicKey must be a DER SEQUENCE")
    tag_n, n, pos = _read_tlv(seq, 0)
    tag_e, e, _ = _read_tlv(seq, pos)
    if tag_n != 0x02 or tag_e != 0x02:
        raise KeyFormatError("RSAPublicKey must hold two INTEGERs (n, e)")
    return _checked(int.from_bytes(n, "big"), int.from_bytes(e, "big"))


def _from_spki(der: bytes) -> RsaPublicKey:
    tag, seq, _ = _read_tlv(der, 0)
    if tag != 0x30:
        raise KeyFormatError("SubjectPublicKeyInfo must be a DER SEQUENCE")
    tag_alg, alg, pos = _read_tlv(seq, 0)
    tag_oid, oid, _ = _read_tlv(alg, 0) if tag_alg == 0x30 else (0, b"", 0)
    if tag_oid != 0x06 or oid != _RSA_ENCRYPTION_OID:
        raise KeyFormatError("public key is not an RSA key (rsaEncryption OID expected)")
    tag_bits, bits, _ = _read_tlv(seq, pos)
    if tag_bits != 0x03 or not bits or bits[0] != 0:
        raise KeyFormatError("SubjectPublicKeyInfo has no valid BIT STRING")
    return _from_pkcs1(bits[1:])
