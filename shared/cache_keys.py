"""Cache keys: one stored answer per (tenant, scope, everything in the request that can change the answer).

The product promise is that an answer served from the KV is the answer the origin would have given
this asker, so every decision here is an access-control check:

* **Tenant.** Tenant ids are validated where they are created (``validate_tenant``: 1-64 of
  ``A-Z a-z 0-9 . _ -``) and used verbatim as a key segment. The segment is the identity function on
  that set, which contains no ``/``, so two tenants never share a key or a prefix; there is no second,
  hashed form that a literal tenant name could imitate.
* **What is keyed.** The whole request as canonical JSON (sorted keys, no spaces), minus an explicit
  allow-list of fields that cannot change the answer (``UNKEYED_FIELDS``); an unknown or new field is
  keyed too. ``user`` is not in the shared key: it names the end user, and goes to the scope.
* **Structure.** Messages stay a JSON array of objects, so roles, order and turn boundaries are part of
  the encoding and no text can imitate a separator (JSON escapes every quote and control character).
* **Normalisation.** Only what cannot change meaning: Unicode canonical composition (NFC: the same text
  by Unicode's definition), line endings, and whitespace after the last visible character or in blank
  lines before the first. No NFKC (3²/32, x₁/x1, ①/1), no case folding (US/us), no punctuation
  stripping (10!/10), no inner-whitespace collapsing (indented code).
* **Scope.** ``shared`` answers live at ``ans/<tenant>/s/<digest>``; ``user`` answers at
  ``ans/<tenant>/u/<sha256(user)[:32]>/<digest>``: only a request carrying that end user builds that key.

Keys are fixed-length hashes under a readable prefix, so they fit Workers KV's 512-byte limit and a
tenant (or one user of it) can be listed and purged by prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

KEY_SCHEMA = "v2"
TENANT_RULE = "1-64 characters from A-Z, a-z, 0-9, '.', '_' and '-'"
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
USER_RULE = "1-128 visible ASCII characters (no spaces or control characters)"
_USER = re.compile(r"[\x21-\x7e]{1,128}")

# Request fields that cannot change the answer's content, so are left out of the key (documented in the
# README). stream/stream_options: the same answer, delivered differently (stored answers replay as streams).
# user/safety_identifier: the end user (OpenAI's old and new name for it), who goes to the scope (a shared
# answer is by definition the same for every user); keyed, they would split a shared answer per user.
# metadata/store: OpenAI's bookkeeping for stored completions; the edge never reads them.
# prompt_cache_key/prompt_cache_retention/service_tier: hints to OpenAI's own prompt cache and scheduling,
# which the origin never passes on (as /v1/responses drops them); clients often set a per-user or
# per-conversation prompt_cache_key, which keyed would split every shared answer.
UNKEYED_FIELDS = frozenset({"stream", "stream_options", "user", "safety_identifier", "metadata", "store",
                            "prompt_cache_key", "prompt_cache_retention", "service_tier"})

Scope = Literal["shared", "user"]


class InvalidTenant(ValueError):
    """A tenant id outside ``TENANT_RULE``; it must never reach a KV key."""


class InvalidUser(ValueError):
    """An end-user id outside ``USER_RULE``."""


def validate_tenant(tenant: object) -> str:
    """The tenant id itself, or raise ``InvalidTenant`` naming the rule."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        shown = repr(tenant)[:80] if isinstance(tenant, str) else type(tenant).__name__
        raise InvalidTenant(f"tenant id {shown} is not valid: use {TENANT_RULE}")
    return tenant


def validate_user(user: object) -> str:
    """The end-user id itself, or raise ``InvalidUser`` naming the rule.

    Visible ASCII only: the id travels to the origin in a signed HTTP header, and ids that websites
    use (UUIDs, hashed e-mails, numeric ids) fit; a longer or exotic id can be hashed by the caller."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise InvalidUser(f"the end-user id must be {USER_RULE}")
    return user


def tenant_segment(tenant: str) -> str:
    """The tenant's key segment: the validated id itself (injective, and free of '/')."""
    return validate_tenant(tenant)


def tenant_prefix(tenant: str) -> str:
    return f"ans/{tenant_segment(tenant)}/"


def user_segment(user: str) -> str:
    # Not reversible (a KV listing does not reveal who asked); 128 bits keep collisions out of reach.
    return hashlib.sha256(validate_user(user).encode()).hexdigest()[:32]


def shared_key(tenant: str, digest: str) -> str:
    return f"{tenant_prefix(tenant)}s/{digest}"


def user_key(tenant: str, user: str, digest: str) -> str:
    return f"{tenant_prefix(tenant)}u/{user_segment(user)}/{digest}"


def key_scope(key: str) -> Scope:
    """Which scope an answer key belongs to, read back from its shape."""
    return "user" if key.split("/", 3)[2:3] == ["u"] else "shared"



# ---------------------------------------------------------------- the request digest

_LINE_ENDINGS = re.compile(r"\r\n?")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def normalise_text(text: str) -> str:
    """Only what cannot change meaning: NFC, line endings, trailing whitespace, leading blank lines.

    Inner whitespace and the first line's indentation are kept (code), and so are case, compatibility
    forms and punctuation."""
    text = _LINE_ENDINGS.sub("\n", unicodedata.normalize("NFC", text))
    return _LEADING_BLANK_LINES.sub("", text).rstrip()


def _normalise_content(content: Any) -> Any:
    if isinstance(content, str):
        return normalise_text(content)
    if (isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict)
            and content[0].keys() == {"type", "text"} and content[0]["type"] == "text"
            and isinstance(content[0]["text"], str)):
        # One text part says exactly what the string says (OpenAI's two spellings of one message; the
        # Responses API's input_text arrives this way), so both are one request. Several parts stay a list.
        return normalise_text(content[0]["text"])
    if isinstance(content, list):
        return [{**part, "text": normalise_text(part["text"])}
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                else part for part in content]
    return content


def canonical_request(request: Mapping[str, Any], *, default_model: str) -> dict[str, Any]:
    """Everything in a validated chat request that can change the answer, in one comparable value."""
    keyed = {name: value for name, value in request.items() if name not in UNKEYED_FIELDS}
    keyed["model"] = request.get("model", default_model)  # absent and the default are one request
    messages = request.get("messages")
    if isinstance(messages, list):
        keyed["messages"] = [{**m, "content": _normalise_content(m["content"])}
                             if isinstance(m, dict) and "content" in m else m for m in messages]
    return keyed


def canonical_json(value: Any) -> bytes:
    # surrogatepass: a lone surrogate still encodes, and to bytes no other text encodes to, so the
    # encoding stays injective for every string json.loads can produce.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True).encode("utf-8", "surrogatepass")


def request_digest(request: Mapping[str, Any], *, default_model: str, locale: str, versions: str) -> str:
    """The hash of what the answer depends on besides the tenant and the end user."""
    material = [KEY_SCHEMA, versions, locale, canonical_request(request, default_model=default_model)]
    return hashlib.sha256(canonical_json(material)).hexdigest()


@dataclass(frozen=True, slots=True)
class AnswerKeys:
    """Where one request's answer may be stored and read: the tenant-wide key, and the end user's own
    key when the end user is known."""

    shared: str
    user: str | None

    @classmethod
    def of(cls, tenant: str, user: str, digest: str) -> AnswerKeys:
        return cls(shared_key(tenant, digest), user_key(tenant, user, digest) if user else None)

    def for_scope(self, scope: str) -> str | None:
        """The key to write under for a route's scope; None when nothing may be stored."""
        if scope == "shared":
            return self.shared
        if scope == "user":
            return self.user  # None: an unknown end user's personal answer is never stored
        return None


def answer_keys(tenant: str, user: str, request: Mapping[str, Any], *, default_model: str, locale: str,
                versions: str) -> AnswerKeys:
    """The one recipe from a validated chat request (as a JSON object) and its asker to its keys."""
    return AnswerKeys.of(tenant, user, request_digest(request, default_model=default_model, locale=locale,
                                                      versions=versions))
