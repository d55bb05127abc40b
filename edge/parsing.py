"""Request body → (validated chat request, request digest), remembered for recently seen bodies.

Repeat visitors asking a popular question send byte-identical bodies, and parsing, validating,
normalising and hashing one costs ~20 µs in CPython — the largest share of a cache hit. Results are
remembered per (locale, body) for small bodies, in a bounded table; a body that fails validation is
never remembered, so its error is raised every time. Everything else the digest depends on
(model/policy/prompt versions, the default model) is fixed for the life of the table. The tenant and
the end user are not in the digest: ``keys_for`` puts them in the key's path (``shared.cache_keys``).
"""

from __future__ import annotations

import re

from shared import wire
from shared.cache_keys import AnswerKeys, request_digest

MAX_ENTRIES = 2048
MAX_REMEMBERED_BODY_BYTES = 2048  # at most ~4 MiB of bodies: fits Workers' 128 MB beside everything else
MAX_MEMO_BYTES = 8 << 20  # bodies, tenants, locales and their parsed copies (counted as twice the body)


LOCALE_HEADER = "x-eaves-locale"
MAX_LOCALE_CHARS = 35  # RFC 5646 §4.4.1: the length every implementation must support
# RFC 5646 language tags (langtag and private use; grandfathered tags left out), case-insensitive.
_LANGTAG = re.compile(
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"  # language (+ extlang)
    r"(?:-[a-z]{4})?"  # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"  # variants
    r"(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*"  # extensions
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"  # private use
    r"|x(?:-[a-z0-9]{1,8})+", re.IGNORECASE | re.ASCII)


def check_locale(value: str) -> str:
    """The ``x-eaves-locale`` header: empty, or a BCP 47 language tag of at most 35 characters."""
    if not value:
        return ""
    if len(value) > MAX_LOCALE_CHARS or not _LANGTAG.fullmatch(value):
        raise wire.WireError(f"{LOCALE_HEADER} must be a BCP 47 language tag such as 'en-GB' of at most "
                             f"{MAX_LOCALE_CHARS} characters", LOCALE_HEADER)
    return value


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` with optional parameters (RFC 9110 §8.3.1), not merely a prefix of it."""
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False  # JSON is UTF-8 (RFC 8259 §8.1); a body declared otherwise would be misread
    return True


class RequestParser:
    __slots__ = ("_bytes", "_default_model", "_keys", "_max_body", "_max_bytes", "_max_entries", "_max_prompt_chars",
                 "_memo", "_versions")

    def __init__(self, *, default_model: str, max_prompt_chars: int, versions: str, max_entries: int = MAX_ENTRIES,
                 max_body_bytes: int = MAX_REMEMBERED_BODY_BYTES, max_bytes: int = MAX_MEMO_BYTES) -> None:
        self._default_model = default_model
        self._max_prompt_chars = max_prompt_chars
        self._versions = versions
        self._max_entries = max_entries
        self._max_body = max_body_bytes
        self._max_bytes = max_bytes
        self._bytes = 0
        self._memo: dict[tuple[str, bytes], tuple[wire.ChatRequest, str]] = {}
        self._keys: dict[tuple[str, str, str], AnswerKeys] = {}

    def parse(self, body: bytes, locale: str) -> tuple[wire.ChatRequest, str]:
        """The chat request and its request digest; raises ``wire.WireError`` for an invalid body."""
        memo_key = (locale, body)
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        chat = wire.parse_chat_request(body, default_model=self._default_model,
                                       max_prompt_chars=self._max_prompt_chars)
        result = (chat, self.digest(chat, locale))
        if len(body) <= self._max_body:
            cost = _cost(memo_key)
            while self._memo and (len(self._memo) >= self._max_entries or self._bytes + cost > self._max_bytes):
                oldest = next(iter(self._memo))  # insertion order
                del self._memo[oldest]
                self._bytes -= _cost(oldest)
            self._memo[memo_key] = result
            self._bytes += cost
        return result

    def digest(self, chat: wire.ChatRequest, locale: str) -> str:
        """The digest of a validated chat request: also for requests that arrive in another shape (the
        Responses API converts to the chat shape first, then keys here)."""
        return request_digest(chat.raw, default_model=self._default_model, locale=locale, versions=self._versions)

    def keys_for(self, tenant: str, end_user: str, digest: str) -> AnswerKeys:
        """Where the answer to this request may live, for this tenant and end user; remembered like parses
        (validating and hashing an end user costs ~5 µs, a sixth of a hit)."""
        memo_key = (tenant, end_user, digest)
        found = self._keys.get(memo_key)
        if found is None:
            found = AnswerKeys.of(tenant, end_user, digest)
            if len(self._keys) >= self._max_entries:
                del self._keys[next(iter(self._keys))]
            self._keys[memo_key] = found
        return found

    @property
    def bytes(self) -> int:
        """What the remembered entries hold, roughly: bounded by ``max_bytes``."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._memo)


def _cost(memo_key: tuple[str, bytes]) -> int:
    # The key's strings plus the parsed request (prompt, system, history, raw dict): about twice the body.
    locale, body = memo_key
    return len(locale) + 3 * len(body) + 256
