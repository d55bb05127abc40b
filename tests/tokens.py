"""Minting JWTs for tests, in pure Python (so the same helpers work inside Pyodide)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from edge.jwt import segment_encode, sign_hs256

FIXTURES = Path(__file__).parent / "fixtures"
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


b64url = segment_encode


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
    if alg == "HS256":
        return sign_hs256(claims, secret, head)
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    if alg == "RS256":
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
