"""Minting JWTs for tests, in pure Python (so the same helpers work inside Pyodide)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def rsa_keys() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "rsa_test_keys.json").read_text())
    return data


def public_jwk(name: str = "a") -> dict[str, str]:
    key = rsa_keys()["keys"][name]
    return {"kty": "RSA", "n": key["n"], "e": key["e"]}


def mint(claims: dict[str, Any], *, alg: str = "HS256", secret: str = "", rsa_key: str = "a",
         header: dict[str, Any] | None = None) -> str:
    head = {"alg": alg, "typ": "JWT", **(header or {})}
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    if alg == "HS256":
        signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    elif alg == "RS256":
        key = rsa_keys()["keys"][rsa_key]
        n, d = _int(key["n"]), _int(key["d"])
        k = (n.bit_length() + 7) // 8
        t = _SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        signature = pow(int.from_bytes(em, "big"), d, n).to_bytes(k, "big")
    elif alg == "none":
        signature = b""
    else:
        raise ValueError(alg)
    return f"{signing_input.decode()}.{b64url(signature)}"
