"""Request ids: unique, 16 hex characters, and never repeated by a forked child."""

from __future__ import annotations

import os
import re

from edge.ids import REQUEST_IDS, RequestIds


def test_ids_are_16_hex_characters_and_unique_across_many_pools() -> None:
    ids = RequestIds()
    seen = [ids.new() for _ in range(5000)]  # ~20 pools
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in seen)
    assert len(set(seen)) == len(seen)


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    REQUEST_IDS.new()  # the pool is filled before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running the parent's cleanup
        os.write(write, ",".join(REQUEST_IDS.new() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split(",")
    os.close(read)
    parent = [REQUEST_IDS.new() for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent)
