"""What the [freshness] and [records] tests share: both tables are read by one backstop parser
(shared.intent.policy), so a bad one is refused the same way, naming the file and the table; and both narrow
the same rules (BASE_POLICY) for the same shareable reading (SHARED)."""

from __future__ import annotations

import pytest

from shared.intent import PolicyError
from shared.intent.policy import TomlPolicy
from shared.intent.routing import Intent

# The rules each backstop narrows: shareable answers kept an hour for the tenant, personal ones never.
BASE_POLICY = '''
[default]
action = "cache"
ttl_s = 3600
stale_s = 600

[decisions.personal]
action = "origin"
'''
SHARED = Intent("oos", "oos", 0.9, "shared", 0.9)


def assert_bad_table_names_the_problem(section: str, table: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        TomlPolicy(f"[default]\naction = \"cache\"\nttl_s = 60\n[{section}]\n" + table, "p.toml")
    assert f"p.toml [{section}]" in str(info.value)
