"""Request body → (validated chat request, request digest), remembered for recently seen bodies.

Repeat visitors asking a popular question send byte-identical bodies, and parsing, validating,
normalising and hashing one costs ~20 µs in CPython — the largest share of a cache hit. Results are
remembered per (locale, body) for small bodies, in a bounded table; a body that fails validation is
never remembered, so its error is raised every time. Everything else the digest depends on
(model/policy/prompt versions, the default model) is fixed for the life of the table. The tenant and
the end user are not in the digest: ``keys_for`` puts them in the key's path (``shared.cache_keys``).
"""

from __future__ import annotations

from shared import wire
from shared.cache_keys import AnswerKeys, request_digest

MAX_ENTRIES = 2048
MAX_REMEMBERED_BODY_BYTES = 2048  # at most ~4 MiB of bodies: fits Workers' 128 MB beside everything else


class RequestParser:
    __slots__ = ("_default_model", "_keys", "_max_body", "_max_entries", "_max_prompt_chars", "_memo", "_versions")

    def __init__(self, *, default_model: str, max_prompt_chars: int, versions: str, max_entries: int = MAX_ENTRIES,
                 max_body_bytes: int = MAX_REMEMBERED_BODY_BYTES) -> None:
        self._default_model = default_model
        self._max_prompt_chars = max_prompt_chars
        self._versions = versions
        self._max_entries = max_entries
        self._max_body = max_body_bytes
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
            if len(self._memo) >= self._max_entries:
                del self._memo[next(iter(self._memo))]  # the oldest entry: insertion order
            self._memo[memo_key] = result
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

    def __len__(self) -> int:
        return len(self._memo)
