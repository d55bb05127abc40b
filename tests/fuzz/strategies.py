"""What the fuzz tier throws: JSON of any shape, every kind of Unicode, header values, credentials.

Shared by the edge and origin fuzz tests. The budget is one profile (``FUZZ``): moderate example counts,
no per-example deadline (the machine is shared), scaled by EAVES_FUZZ_SCALE for a longer local run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("EAVES_FUZZ_SCALE", "1"))


def budget(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# Every code point; lone surrogates (which hypothesis leaves out unless asked) now and then.
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
text = (st.text(max_size=40) | st.text(max_size=40) | st.text(any_char, max_size=20)
        | st.sampled_from(["", " ", "\ud800", "a\udfffb", "\x00", "x" * 5000, "eyJ", "3²", "①", "US"]))
huge_ints = st.integers(min_value=-(10**80), max_value=10**80)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_ints | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)

roles = st.sampled_from(["user", "system", "assistant", "developer", "tool", "robot", "", None])
content = text | json_values | st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]),
                                                               "text": text}), max_size=3)
message = st.fixed_dictionaries({"role": roles, "content": content}) | json_values
chat_like = st.fixed_dictionaries(
    {"messages": st.lists(message, min_size=0, max_size=4) | json_values},
    optional={"model": text | json_values, "stream": st.booleans() | json_values,
              "max_tokens": json_values, "temperature": json_values, "n": json_values, "stop": json_values,
              "user": json_values, "seed": huge_ints},
)


# Mostly well-formed requests with hostile text inside, so the fuzz reaches the KV, the origin and back.
plausible_chat = st.fixed_dictionaries(
    {"messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]),
                                                  "content": text}), min_size=1, max_size=3).map(
        lambda ms: [*ms, {"role": "user", "content": "question " + str(len(ms))}])},
    optional={"model": st.sampled_from(["m", "eaves-default"]) | text, "stream": st.booleans(),
              "max_tokens": st.integers(min_value=-2, max_value=10**6), "temperature": st.floats(0, 2),
              "user": text, "seed": huge_ints},
)


def _dumps(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=True turns lone surrogates into \udxxx escapes; False sends them as raw ED-prefixed bytes.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int) -> bytes:
    return b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"


bodies = st.one_of(
    st.builds(_dumps, plausible_chat, st.booleans()),
    st.builds(_dumps, plausible_chat, st.booleans()),
    st.builds(_dumps, plausible_chat, st.booleans()),
    st.builds(_dumps, chat_like, st.booleans()),
    st.builds(_dumps, json_values, st.booleans()),
    st.binary(max_size=200),
    st.builds(_nested, st.sampled_from([10, 64, 65, 1000, 100_000])),
    st.just(b'{"messages": [{"role": "user", "content": "a\xed\xa0\x80"}]}'),
    st.just(b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}'),
    st.just(b'{"messages": [{"role": "user", "content": "x"}], "seed": ' + b"9" * 5000 + b"}"),
)

# Header values as an HTTP server hands them over: Latin-1 text without CR, LF or NUL.
latin1 = st.text(st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=60)
header_value = latin1 | st.sampled_from(["", " ", "x" * 9000, "application/json", "application/jsonx",
                                         "application/json; charset=latin-1", "no-cache", "no-store",
                                         "respond-async", "en-GB", "ünïcödé"])
header_names = st.sampled_from(["x-request-id", "x-request-id", "x-eaves-locale", "x-eaves-locale", "cache-control",
                                "prefer", "accept", "x-eaves-tenant", "x-eaves-cache-key", "content-type",
                                "x-api-key", "authorization"])
extra_headers = st.lists(st.tuples(header_names, header_value), max_size=3)

# JWTs: well signed with random claims and header fields (tenant, tier, kid, alg of any value), or forged
# spellings of the same token (padding, standard alphabet, junk segments).
jwt_claims = st.fixed_dictionaries({}, optional={"tenant": text | json_values, "tier": text | json_values,
                                                  "sub": text | json_values, "exp": json_values,
                                                  "nbf": json_values, "aud": json_values})
jwt_headers = st.fixed_dictionaries({}, optional={"kid": text | json_values, "alg": text | json_values,
                                                   "crit": json_values, "typ": text})
jwt_mangle = st.sampled_from(["", "pad", "standard", "junk-signature", "junk-header"])
