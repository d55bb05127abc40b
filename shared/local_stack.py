"""The local stack's on-disk state: one data directory shared by the origin, the emulator and the CLI.

    <data-dir>/eaves.json   settings both servers read (signing secret, generated on first start)
    <data-dir>/kv/          the LMDB KV (answers, API key hashes)
    <data-dir>/ratelimit/   the LMDB rate-limit counters (not fsynced: losing them on a crash is harmless)
    <data-dir>/replay/      the origin's record of signed requests already served (origin.replay)
    <data-dir>/demo-key     the demo tenant's API key, so `eaves up` can print a working curl every time
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "eaves.json"


@dataclass(frozen=True)
class LocalStack:
    data_dir: Path

    @property
    def kv_path(self) -> Path:
        return self.data_dir / "kv"

    @property
    def ratelimit_path(self) -> Path:
        return self.data_dir / "ratelimit"

    @property
    def replay_path(self) -> Path:
        return self.data_dir / "replay"

    @property
    def demo_key_path(self) -> Path:
        return self.data_dir / "demo-key"

    def config(self) -> dict[str, Any]:
        """The stack's settings, created with a fresh signing secret on first use."""
        path = self.data_dir / CONFIG_FILE
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except FileNotFoundError:
            pass
        self.data_dir.mkdir(parents=True, exist_ok=True)
        data = {"origin_secret": secrets.token_hex(32)}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        try:
            os.link(tmp, path)  # first writer wins when two processes start at once
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        result: dict[str, Any] = json.loads(path.read_text())
        return result

    def metrics_token(self) -> str:
        """The bearer token for /metrics (edge and origin) and the origin's /healthz totals:
        EAVES_METRICS_TOKEN, else derived from the signing secret, so every process agrees without
        another file and a client key never grants it."""
        env = os.environ.get("EAVES_METRICS_TOKEN")
        if env:
            return env
        return hmac.new(self.origin_secret(), b"eaves metrics token v1", hashlib.sha256).hexdigest()[:40]

    def origin_secret(self) -> bytes:
        env = os.environ.get("EAVES_ORIGIN_SECRET")
        return env.encode() if env else str(self.config()["origin_secret"]).encode()


def bearer_matches(given: bytes, token: str) -> bool:
    """Whether an Authorization value is ``Bearer <token>`` (constant-time; no token configured: never)."""
    return bool(token) and hmac.compare_digest(given, b"Bearer " + token.encode())
