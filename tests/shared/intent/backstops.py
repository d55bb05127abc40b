"""A helper shared by the [freshness] and [records] tests: both tables are read by one backstop parser
(shared.intent.policy), so a bad one is refused the same way, naming the file and the table."""

from __future__ import annotations

import pytest

from shared.intent import PolicyError
from shared.intent.policy import TomlPolicy


def assert_bad_table_names_the_problem(section: str, table: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        TomlPolicy(f"[default]\naction = \"cache\"\nttl_s = 60\n[{section}]\n" + table, "p.toml")
    assert f"p.toml [{section}]" in str(info.value)
