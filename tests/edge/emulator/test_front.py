"""The emulator's ASGI front: repeated headers joined as Fetch does, /metrics only with the operator's token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge.emulator.asgi import EdgeASGI, joined_headers
from shared.local_stack import LocalStack


class TestEmulatorFront:
    def test_repeated_headers_are_joined_like_fetch(self) -> None:
        """Two Authorization fields reach the core as one value with ', ' (then refused there)."""
        raw = [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b"), (b"x", b"1")]
        assert joined_headers(raw) == {"authorization": "Bearer a, Bearer b", "x": "1"}

    async def test_metrics_need_the_operator_token(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """On the client-facing port, /metrics answers 401 JSON without the token, Prometheus text with it."""
        monkeypatch.setenv("EAVES_INTENT", "off")
        app = EdgeASGI(tmp_path, {"EAVES_METRICS_DIR": str(tmp_path / "m"), "EAVES_INTENT": "off",
                                  "EAVES_LOG": "off"})
        token = LocalStack(tmp_path).metrics_token()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            refused = await client.get("/metrics", headers={"authorization": "Bearer eav_client_key"})
            allowed = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "metrics_token_required"
        assert allowed.status_code == 200 and "eaves_edge" in allowed.text
