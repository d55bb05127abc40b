"""Cache keys: one answer per (scope, everything that changes the answer, normalised prompt).

The key is a fixed-length hash under a readable prefix, so it always fits Workers KV's 512-byte limit
and the tenant scope can be listed or purged by prefix.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

KEY_SCHEMA = "v1"
_WHITESPACE = re.compile(r"\s+")
# Trailing sentence punctuation rarely changes the answer ("what time is it?" vs "what time is it").
_TRAILING_PUNCT = " \t.!?。！？"  # noqa: RUF001 -- CJK full-width marks on purpose


def normalise_prompt(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed, trailing sentence punctuation dropped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WHITESPACE.sub(" ", folded).strip().rstrip(_TRAILING_PUNCT)


@dataclass(frozen=True, slots=True)
class AnswerScope:
    """Everything besides the prompt that changes the answer."""

    tenant: str
    model: str
    system: str = ""
    locale: str = ""
    versions: str = ""  # model/policy/prompt-template versions, joined

    def fingerprint(self) -> str:
        parts = (KEY_SCHEMA, self.model, normalise_prompt(self.system), self.locale.lower(), self.versions)
        return "\x1f".join(parts)


def answer_key(scope: AnswerScope, prompt: str) -> str:
    digest = hashlib.sha256(f"{scope.fingerprint()}\x1e{normalise_prompt(prompt)}".encode()).hexdigest()
    return f"ans/{tenant_segment(scope.tenant)}/{digest}"


def tenant_prefix(tenant: str) -> str:
    return f"ans/{tenant_segment(tenant)}/"


def tenant_segment(tenant: str) -> str:
    # Tenant ids are user-chosen: hash anything that could smuggle a "/" or exceed the key budget.
    if tenant and len(tenant) <= 64 and all(c.isalnum() or c in "-_." for c in tenant):
        return tenant
    return "h-" + hashlib.sha256(tenant.encode()).hexdigest()[:32]
