"""Edge → origin signatures: what they cover and what they refuse."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.signing import SignatureError, sign, verify

SECRET = b"k" * 32


def signed(headers: dict[str, str] | None = None, body: bytes = b"{}") -> dict[str, str]:
    extra = headers or {}
    return {**extra, **sign(SECRET, "POST", "/v1/chat/completions", body, 1000.0, extra)}


class TestVerify:
    def test_signature_is_the_documented_hmac(self) -> None:
        """The signature is HMAC-SHA256, hex, after "v1=", over the lines: method, path, unix timestamp, the
        body's SHA-256 hex, then each x-eaves-* header (the fresh x-eaves-nonce included) as "name:value"
        sorted by name (computed here by hand, so that an origin written in another language can verify it)."""
        headers = {"X-Eaves-Tenant": "acme", "x-eaves-cache-key": "ans/acme/1", "x-other": "not signed"}
        out = sign(SECRET, "post", "/v1/chat/completions", b"{}", 1000.9, headers)
        nonce = out["x-eaves-nonce"]
        assert len(nonce) == 32 and int(nonce, 16) >= 0
        message = "\n".join(["POST", "/v1/chat/completions", "1000", hashlib.sha256(b"{}").hexdigest(),
                              "x-eaves-cache-key:ans/acme/1", f"x-eaves-nonce:{nonce}", "x-eaves-tenant:acme"])
        expected = hmac.new(SECRET, message.encode(), hashlib.sha256).hexdigest()
        assert out == {"x-eaves-timestamp": "1000", "x-eaves-nonce": nonce, "x-eaves-signature": f"v1={expected}"}
        assert sign(SECRET, "post", "/v1/chat/completions", b"{}", 1000.9, headers)["x-eaves-nonce"] != nonce
        verify(SECRET, "POST", "/v1/chat/completions", b"{}", {**headers, **signed(headers)}, 1010.0)

    @pytest.mark.parametrize("now", [1000.0 - 300, 1000.0 + 300])
    def test_300_seconds_either_way_is_accepted(self, now: float) -> None:
        """A signature up to 300 s old, or 300 s ahead (clock skew), is accepted."""
        verify(SECRET, "POST", "/v1/chat/completions", b"{}", signed(), now)

    @pytest.mark.parametrize("now", [1000.0 - 301, 1000.0 + 301])
    def test_301_seconds_either_way_is_refused(self, now: float) -> None:
        """One second past the window either way is refused, with the offset and the allowed skew."""
        with pytest.raises(SignatureError, match=r"301s off; allowed skew is 300s"):
            verify(SECRET, "POST", "/v1/chat/completions", b"{}", signed(), now)

    @pytest.mark.parametrize("change, message", [
        ({"body": b"{ }"}, "does not match"),
        ({"path": "/other"}, "does not match"),
        ({"secret": b"x" * 32}, "does not match"),
        ({"now": 2000.0}, "off"),
    ])
    def test_any_change_fails(self, change: dict[str, object], message: str) -> None:
        """Another body, path, secret or a stale timestamp is refused with a reason."""
        args: dict[str, object] = {"secret": SECRET, "path": "/v1/chat/completions", "body": b"{}", "now": 1010.0}
        args.update(change)
        with pytest.raises(SignatureError, match=message):
            verify(args["secret"], "POST", args["path"], args["body"], signed(), args["now"])  # type: ignore[arg-type]

    def test_eaves_headers_are_covered(self) -> None:
        """Changing the cache key header after signing breaks the signature."""
        headers = signed({"x-eaves-cache-key": "ans/a/1", "x-other": "free"})
        headers["x-other"] = "changed"
        verify(SECRET, "POST", "/v1/chat/completions", b"{}", headers, 1000.0)
        headers["x-eaves-cache-key"] = "ans/b/1"
        with pytest.raises(SignatureError):
            verify(SECRET, "POST", "/v1/chat/completions", b"{}", headers, 1000.0)

    def test_unsigned_request(self) -> None:
        """A request with no signature headers says it is not signed."""
        with pytest.raises(SignatureError, match="not signed"):
            verify(SECRET, "POST", "/", b"", {}, 0.0)

    def test_empty_secret_refuses_everything(self) -> None:
        """An origin without a secret never accepts (an empty HMAC key would be guessable)."""
        headers = {**sign(b"", "POST", "/", b"", 0.0)}
        with pytest.raises(SignatureError, match="no signing secret"):
            verify(b"", "POST", "/", b"", headers, 0.0)
