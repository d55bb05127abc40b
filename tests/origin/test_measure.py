"""`eaves measure-generation` / `python -m origin.measure`: argument checks, the table, a tiny real run."""

from __future__ import annotations

import json

import pytest

from origin import measure


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        measure.main(["ttfb", "--requests", "0"])
    assert exit_info.value.code == 2 and "must be positive" in capsys.readouterr().err


def test_table_lists_both_parts() -> None:
    row = {"edge": 3.0, "origin": 1.0, "edge_minus_origin": 2.0}
    report = {"ttfb": {"requests_each": 5, "simulated_ttft_ms": 20,
                       **{f"{m}_p{q}_ms": row for m in ("ttfb", "ttft") for q in (50, 99)}},
              "llama": {"skipped": "not installed"}}
    table = measure.format_table(report)
    assert "ttfb p50" in table and "ttft p99" in table and "2.00" in table and "skipped" in table


@pytest.mark.integration
def test_a_small_real_run_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert measure.main(["ttfb", "--requests", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ttfb"]["requests_each"] == 2
    assert report["ttfb"]["ttfb_p50_ms"]["edge"] > 0 and report["ttfb"]["ttft_p50_ms"]["origin"] > 0
