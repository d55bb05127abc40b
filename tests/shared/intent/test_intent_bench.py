"""The benchmark's report: every figure the issue asks for is printed (the figures themselves are not
asserted: they come from CLINC150, which the tests do not need)."""

from __future__ import annotations

from typing import Any

from shared.intent.bench import SWEEP, load_test_questions, render


def fake_result() -> dict[str, Any]:
    timing = {"in_scope_accuracy": 0.9357, "oos_recall": 0.53, "macro_f1": 0.93, "p50_us": 50.0, "p99_us": 110.0}
    names = ("attacks_heldout", "attacks_all", "benign_traps_heldout", "clinc_val", "load_test_questions")
    abuse: dict[str, Any] = {f"{name}_n": 10 for name in names}
    abuse.update({f"{name}_blocked": 0.5 for name in names})
    abuse.update({"abuse_min_confidence": 0.5, "load_test_max_abuse_confidence": 0.4,
                  "sweep": {str(f): dict.fromkeys(names, 0.5) for f in SWEEP}})
    return {"model": "m.onnx", "bytes": 1_888_915, "version": "intent-x", "threshold": 0.17, "queries": 3100,
            "onnxruntime": timing, "numpy": timing, "pure": timing, "max_abs_diff_numpy": 2e-6,
            "intent_disagreements_numpy": 0, "max_abs_diff_pure": 2e-6, "intent_disagreements_pure": 0,
            "abuse": abuse,
            "decisions_heldout": {"website": {
                "examples": 3, "shareable_second_user_from_edge": 0.9, "personal_crosses_users": 0.0,
                "time_sensitive_over_300s": 0.0,
                "decisions": {"confusion": {"personal": {"personal": 1}, "shared": {"shared": 2}}}}}}


def test_render_names_every_target() -> None:
    """Accuracy, oos recall, size, the three runtimes' latency, parity and the abuse trade-off rows."""
    text = render(fake_result())
    for needle in ("in-scope accuracy", "oos recall", "1,888,915 bytes", "onnxruntime, 1 thread",
                   "onnx_lite numpy", "onnx_lite pure Python", "parity numpy", "parity pure",
                   "attacks, held out", "CLINC150 val, wrongly", "load-test questions, wrongly", "min_conf",
                   "website (3 rows", "personal served across users 0.0 %", "shared          -> shared 2"):
        assert needle in text, needle
    assert sum(line.strip().startswith(str(f)) for line in text.splitlines() for f in SWEEP) == len(SWEEP)


def test_load_test_questions_are_the_load_tests() -> None:
    """The abuse figures use what the load test sends: every question of its banks, and fresh questions."""
    from loadtest.banks import load_banks

    banks = [q.text for questions in load_banks().values() for q in questions]
    questions = load_test_questions(fresh=5)
    assert questions[:len(banks)] == banks and len(questions) == len(banks) + 5
    assert not set(questions[len(banks):]) & set(banks)
