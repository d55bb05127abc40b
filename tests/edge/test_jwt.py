"""JWT verification: algorithms pinned per key, registered claims checked."""

from __future__ import annotations

import base64

import pytest

from edge.jwt import JwtConfig, JwtError, JwtKey, verify_jwt
from edge.rsa import load_rsa_public_key
from tests.tokens import b64url, mint, public_jwk, rsa_keys

# RFC 7515 appendix A.1: an HS256 JWS and its key, computed by the RFC's authors, not by this project.
RFC7515_TOKEN = ("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                 ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
                 ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
RFC7515_KEY = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"

NOW = 1_750_000_000
SECRET = "s" * 32
HS = JwtKey("HS256", secret=SECRET.encode())
RS = JwtKey("RS256", kid="a", public_key=load_rsa_public_key(public_jwk("a")))


def config(*keys: JwtKey, **kwargs: object) -> JwtConfig:
    return JwtConfig(keys=keys or (HS, RS), **kwargs)  # type: ignore[arg-type]


class TestSignatures:
    def test_hs256_token_verifies(self) -> None:
        """A token signed with the configured HS256 secret is accepted and its claims returned."""
        claims = verify_jwt(mint({"tenant": "t", "exp": NOW + 60}, secret=SECRET), config(), NOW)
        assert claims["tenant"] == "t"

    def test_rfc7515_hs256_example_verifies(self) -> None:
        """The RFC's own HS256 example verifies with its key, and fails with a one-bit change."""
        secret = base64.urlsafe_b64decode(RFC7515_KEY + "=" * (-len(RFC7515_KEY) % 4))
        cfg = config(JwtKey("HS256", secret=secret))
        claims = verify_jwt(RFC7515_TOKEN, cfg, 1_300_819_380 - 10)
        assert claims == {"iss": "joe", "exp": 1_300_819_380, "http://example.com/is_root": True}
        # A character inside the signature (the last one also carries padding bits, which must be zero).
        at = len(RFC7515_TOKEN) - 10
        flipped = RFC7515_TOKEN[:at] + ("k" if RFC7515_TOKEN[at] != "k" else "j") + RFC7515_TOKEN[at + 1:]
        with pytest.raises(JwtError, match="signature"):
            verify_jwt(flipped, cfg, 1_300_819_370)

    def test_rs256_token_verifies(self) -> None:
        """A token signed with the RSA private key verifies against the public JWK."""
        token = mint({"tenant": "t", "exp": NOW + 60}, alg="RS256", header={"kid": "a"})
        assert verify_jwt(token, config(), NOW)["tenant"] == "t"

    def test_cryptography_signed_token_verifies(self) -> None:
        """A token signed by pyca/cryptography verifies too: the verifier follows RFC 8017, not just our minting."""
        fixture = rsa_keys()["cryptography_signed_token"]
        key = JwtKey("RS256", public_key=load_rsa_public_key(rsa_keys()["keys"]["a"]["pem"]))
        claims = verify_jwt(fixture["token"], config(key, issuer="https://issuer.test", audience="eaves"),
                            fixture["valid_at"])
        assert claims["tenant"] == "acme"

    def test_wrong_secret_fails(self) -> None:
        """An HS256 token signed with another secret is refused."""
        with pytest.raises(JwtError, match="signature"):
            verify_jwt(mint({"exp": NOW + 60}, secret="x" * 32), config(), NOW)

    def test_other_rsa_key_fails(self) -> None:
        """An RS256 token signed by a different private key is refused."""
        token = mint({"exp": NOW + 60}, alg="RS256", rsa_key="b")
        with pytest.raises(JwtError, match="signature"):
            verify_jwt(token, config(), NOW)

    def test_alg_none_fails(self) -> None:
        """'alg: none' is never accepted, even with no signature to check."""
        with pytest.raises(JwtError, match="not accepted"):
            verify_jwt(mint({"exp": NOW + 60}, alg="none"), config(), NOW)

    def test_hs256_signed_with_rsa_public_key_fails(self) -> None:
        """The classic key-confusion attack: HS256 keyed with the RSA public key, against an RS256-only edge."""
        pem = rsa_keys()["keys"]["a"]["pem"]
        token = mint({"exp": NOW + 60}, secret=pem)
        with pytest.raises(JwtError, match="no HS256 key"):
            verify_jwt(token, config(RS), NOW)

    def test_kid_selects_key(self) -> None:
        """With two RS256 keys, the token's kid picks the one to verify with: signed by b and naming b it
        verifies; signed by b but naming a it fails; a kid naming no configured key is refused."""
        rs_b = JwtKey("RS256", kid="b", public_key=load_rsa_public_key(public_jwk("b")))
        cfg = config(RS, rs_b)
        assert verify_jwt(mint({"exp": NOW + 60, "t": 1}, alg="RS256", rsa_key="b", header={"kid": "b"}),
                          cfg, NOW)["t"] == 1
        with pytest.raises(JwtError, match="signature"):
            verify_jwt(mint({"exp": NOW + 60}, alg="RS256", rsa_key="b", header={"kid": "a"}), cfg, NOW)
        with pytest.raises(JwtError, match="kid"):
            verify_jwt(mint({"exp": NOW + 60}, alg="RS256", header={"kid": "zzz"}), config(RS), NOW)

    @pytest.mark.parametrize("token", ["abc", "a.b", "eyJ.eyJ.", "eyJhbGciOiJIUzI1NiJ9.!!!.x",
                                       b64url(b"[1]") + ".e30.c2ln"])
    def test_malformed_tokens_fail(self, token: str) -> None:
        """Garbage in any part of a token is a clean JwtError, not a crash."""
        with pytest.raises(JwtError):
            verify_jwt(token, config(), NOW)


class TestClaims:
    def test_expired(self) -> None:
        """A token past exp (plus leeway) is refused."""
        with pytest.raises(JwtError, match="expired"):
            verify_jwt(mint({"exp": NOW - 31}, secret=SECRET), config(), NOW)

    def test_leeway(self) -> None:
        """A token just past exp but within the leeway is still accepted (clock skew)."""
        assert verify_jwt(mint({"exp": NOW - 29, "t": 2}, secret=SECRET), config(), NOW)["t"] == 2

    def test_not_yet_valid(self) -> None:
        """A token whose nbf is in the future (beyond leeway) is refused."""
        with pytest.raises(JwtError, match="nbf"):
            verify_jwt(mint({"exp": NOW + 600, "nbf": NOW + 120}, secret=SECRET), config(), NOW)

    def test_missing_exp(self) -> None:
        """exp is required: a token that never expires is refused."""
        with pytest.raises(JwtError, match="'exp'"):
            verify_jwt(mint({"tenant": "t"}, secret=SECRET), config(), NOW)

    def test_non_numeric_exp(self) -> None:
        """A string exp is refused instead of compared."""
        with pytest.raises(JwtError, match="number"):
            verify_jwt(mint({"exp": "tomorrow"}, secret=SECRET), config(), NOW)

    def test_issuer_and_audience(self) -> None:
        """iss must match exactly and aud must include the edge's audience (string or list)."""
        cfg = config(issuer="https://idp", audience="eaves")
        ok = {"exp": NOW + 60, "iss": "https://idp"}
        assert verify_jwt(mint({**ok, "aud": ["x", "eaves"]}, secret=SECRET), cfg, NOW)["aud"] == ["x", "eaves"]
        assert verify_jwt(mint({**ok, "aud": "eaves"}, secret=SECRET), cfg, NOW)["aud"] == "eaves"
        with pytest.raises(JwtError, match="issuer"):
            verify_jwt(mint({**ok, "iss": "https://evil", "aud": "eaves"}, secret=SECRET), cfg, NOW)
        with pytest.raises(JwtError, match="audience"):
            verify_jwt(mint({**ok, "aud": "other"}, secret=SECRET), cfg, NOW)


class TestKeyConfig:
    def test_short_hs256_secret_refused(self) -> None:
        """HS256 secrets under 32 bytes are refused at configuration time (RFC 7518 §3.2)."""
        with pytest.raises(ValueError, match="32 bytes"):
            JwtKey.from_config({"alg": "HS256", "secret": "short"})

    def test_unknown_alg_refused(self) -> None:
        """Only HS256 and RS256 can be configured."""
        with pytest.raises(ValueError, match="HS256 or RS256"):
            JwtKey.from_config({"alg": "ES256", "secret": "x" * 40})
