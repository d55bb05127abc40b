"""Request body → (validated chat request, answer key), remembered for recently seen bodies.

Repeat visitors asking a popular question send byte-identical bodies, and parsing, validating,
normalising and hashing one costs ~20 µs in CPython — the largest share of a cache hit. Results are
remembered per (tenant, locale, body) for small bodies, in a bounded table; a body that fails
validation is never remembered, so its error is raised every time. Everything the answer key depends
on besides these three (model/policy/prompt versions, settings) is fixed for the life of the table.
"""

from __future__ import annotations

from shared import wire
from shared.cache_keys import AnswerScope, answer_key

MAX_ENTRIES = 2048
MAX_REMEMBERED_BODY_BYTES = 2048  # at most ~4 MiB of bodies: fits Workers' 128 MB beside everything else


class RequestParser:
    __slots__ = ("_default_model", "_max_body", "_max_entries", "_max_prompt_chars", "_memo", "_versions")

    def __init__(self, *, default_model: str, max_prompt_chars: int, versions: str, max_entries: int = MAX_ENTRIES,
                 max_body_bytes: int = MAX_REMEMBERED_BODY_BYTES) -> None:
        self._default_model = default_model
        self._max_prompt_chars = max_prompt_chars
        self._versions = versions
        self._max_entries = max_entries
        self._max_body = max_body_bytes
        self._memo: dict[tuple[str, str, bytes], tuple[wire.ChatRequest, str]] = {}

    def parse(self, body: bytes, tenant: str, locale: str) -> tuple[wire.ChatRequest, str]:
        """The chat request and its answer key; raises ``wire.WireError`` for an invalid body."""
        memo_key = (tenant, locale, body)
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        chat = wire.parse_chat_request(body, default_model=self._default_model,
                                       max_prompt_chars=self._max_prompt_chars)
        scope = AnswerScope(tenant, chat.model, chat.system + "\x1d" + chat.history, locale, self._versions)
        result = (chat, answer_key(scope, chat.prompt))
        if len(body) <= self._max_body:
            if len(self._memo) >= self._max_entries:
                del self._memo[next(iter(self._memo))]  # the oldest entry: insertion order
            self._memo[memo_key] = result
        return result

    def __len__(self) -> int:
        return len(self._memo)
