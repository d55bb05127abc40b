"""Edge → origin signatures: what they cover and what they refuse."""

from __future__ import annotations

import pytest

from shared.signing import SignatureError, sign, verify

SECRET = b"k" * 32


def signed(headers: dict[str, str] | None = None, body: bytes = b"{}") -> dict[str, str]:
    extra = headers or {}
    return {**extra, **sign(SECRET, "POST", "/v1/chat/completions", body, 1000.0, extra)}


class TestVerify:
    def test_valid_signature_passes(self) -> None:
        """A request signed with the secret, in time, verifies."""
        verify(SECRET, "POST", "/v1/chat/completions", b"{}", signed(), 1010.0)

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
