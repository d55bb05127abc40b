"""The shipped intent model's figures on CLINC150 (its test split where you have it), and its abuse figures.

    python -m shared.intent.bench [--model M] [--clinc DIR] [--json]
    python -m shared.intent.bench --write-parity-fixture tests/shared/onnx_lite/fixtures/parity.json

Prints in-scope accuracy, out-of-scope recall, macro F1, file size, p50/p99 latency (featurise + infer,
one query at a time) for onnxruntime with one thread, onnx_lite with numpy and onnx_lite in pure Python;
the largest probability difference between onnx_lite and onnxruntime over every CLINC150 query and
how many predicted intents differ; and the share of prompt-injection attacks the policy blocks against
the share of CLINC150 questions it wrongly blocks. Needs onnxruntime, numpy and bastioncorpus.
``--clinc DIR``: a folder holding the authors' ``data_full.json`` scores the test split (``clinc_scored``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.intent import load_policy
from shared.intent.classifier import DEFAULT_MODEL, OnnxIntentClassifier, read_model
from shared.intent.corpus import CLINC
from shared.intent.dataset import Example, load_examples
from shared.intent.evaluate import evaluate
from shared.intent.routing import Intent
from shared.intent.train import ABUSE_DOMAIN

FIXTURE_QUERIES = 200
TARGETS = {"in_scope_accuracy": 0.935, "oos_recall": 0.50, "bytes": 2_000_000, "p99_us_onnxruntime": 100.0}


def default_clinc() -> Path:
    """CLINC150 as the repository ships it (shared/intent/data/clinc150), or $EAVES_CLINC150."""
    env = os.environ.get("EAVES_CLINC150")
    if env:
        return Path(env)
    return CLINC.parent


def clinc_scored(folder: Path) -> tuple[str, list[Example]]:
    """The CLINC150 split the figures come from, and its rows: the test split (4,500 + 1,000 out of scope)
    when ``folder`` holds the authors' ``data_full.json`` (github.com/clinc/oos-eval; not in the repository),
    the held-out judge since the eighth model; otherwise the validation split, which trains the shipped model
    since then, so its figures are a fit, not a held-out result."""
    if (folder / "data_full.json").exists():
        return "test", load_examples(f"{folder / 'data_full.json'}#test,oos_test")
    name = "train_val.json.gz" if (folder / "train_val.json.gz").exists() else "train_val.json"
    return "val", load_examples(f"{folder / name}#val,oos_val")


def parity(reference: OnnxIntentClassifier, other: OnnxIntentClassifier,
           texts: Sequence[str]) -> tuple[float, int]:
    worst, disagreements = 0.0, 0
    for text in texts:
        for a, b in zip(reference.runtime.heads(reference.features(text)),
                        other.runtime.heads(other.features(text)), strict=True):
            worst = max(worst, max(abs(x - y) for x, y in zip(a, b, strict=True)))
            disagreements += max(range(len(a)), key=a.__getitem__) != max(range(len(b)), key=b.__getitem__)
    return worst, disagreements


SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def load_test_questions(fresh: int = 300) -> list[str]:
    """What the load test sends: every question of its banks (all labels) and ``fresh`` one-off questions.

    A report, made after every choice: the banks are held-out questions, so nothing here may tune a model or
    a policy (the test suite checks its own fixed questions instead, tests/shared/intent/test_intent_abuse.py).
    """
    import random

    try:
        from loadtest.banks import load_banks
        from loadtest.questions import fresh_question
    except ImportError:  # the load test's question modules have moved or gone: no column for it
        return []

    rng = random.Random(0)
    banks = [q.text for questions in load_banks().values() for q in questions]
    return [*banks, *(fresh_question(rng) for _ in range(fresh))]


def abuse_figures(classifier: OnnxIntentClassifier, val: Sequence[Example]) -> dict[str, Any]:
    """Shares blocked by the shipped policy, and the trade-off had [domains.abuse] another min_confidence."""
    from shared.intent.abuse import load_bastioncorpus

    policy = load_policy()
    split = load_bastioncorpus()
    sets = {"attacks_heldout": split.heldout_attacks, "attacks_all": split.all_attacks,
            "benign_traps_heldout": split.heldout_benign, "clinc": [ex.text for ex in val],
            "load_test_questions": load_test_questions()}
    intents = {name: [classifier.classify(t) for t in texts] for name, texts in sets.items()}

    def share(name: str, blocked: Callable[[Intent], bool]) -> float | None:
        found = intents[name]
        return sum(map(blocked, found)) / len(found) if found else None

    def by_policy(intent: Intent) -> bool:
        return policy.route(intent).action == "block"

    result: dict[str, Any] = {f"{name}_n": len(texts) for name, texts in sets.items()}
    result.update({f"{name}_blocked": share(name, by_policy) for name in sets})
    # The shipped policy blocks on the intent head's abuse labels from this reading (and on the decision head).
    rule = policy.intents.get("prompt_injection") or policy.domains.get(ABUSE_DOMAIN)
    result["abuse_min_confidence"] = rule.min_confidence if rule is not None else None
    result["abuse_unless_decided"] = dict(rule.unless_decided) if rule is not None else {}
    readings = [i.confidence for i in intents["load_test_questions"] if i.domain == ABUSE_DOMAIN]
    result["load_test_max_abuse_confidence"] = max(readings, default=0.0)
    sweep = {}
    for floor in SWEEP:
        def at(intent: Intent, floor: float = floor) -> bool:
            return intent.domain == ABUSE_DOMAIN and intent.confidence >= floor

        sweep[str(floor)] = {name: share(name, at) for name in sets}
    result["sweep"] = sweep
    return result


def run(model: Path | None, clinc: Path) -> dict[str, Any]:
    data, source = read_model(model)
    split, val = clinc_scored(clinc)
    texts = [ex.text for ex in val]
    result: dict[str, Any] = {"model": source, "bytes": len(data), "clinc_split": split, "queries": len(val)}
    classifiers = {name: OnnxIntentClassifier(data, runtime=name, source=source)
                   for name in ("onnxruntime", "numpy", "pure")}
    result["version"] = classifiers["pure"].version
    result["threshold"] = classifiers["pure"].threshold
    for name, classifier in classifiers.items():
        scores = evaluate(classifier, val)
        result[name] = scores
    for name in ("numpy", "pure"):
        worst, disagree = parity(classifiers["onnxruntime"], classifiers[name], texts)
        result[f"max_abs_diff_{name}"] = worst
        result[f"intent_disagreements_{name}"] = disagree
    result["abuse"] = abuse_figures(classifiers["onnxruntime"], val)
    result["decisions_heldout"] = decision_figures(classifiers["onnxruntime"])
    return result


def decision_figures(classifier: OnnxIntentClassifier) -> dict[str, Any]:
    """The shipped policy's routes on each source's held-out part (shared/intent/corpus.py): the website
    prompts, CLINC150's validation split with its mapped decisions, and bastioncorpus's held-out rows."""
    from shared.intent.corpus import load_corpus
    from shared.intent.evaluate import route_report

    policy = load_policy()
    corpus = load_corpus()
    return {source: route_report(classifier, policy, parts["heldout"])
            for source, parts in corpus.sources.items() if parts["heldout"]}


def render(result: dict[str, Any]) -> str:
    ort = result["onnxruntime"]
    split = result.get("clinc_split", "val")
    counts = "4,500 in scope + 1,000 out of scope" if split == "test" else (
        "3,000 in scope + 100 out of scope; it trains the shipped model, so these are not held-out figures")
    lines = [
        f"model        {result['model']} ({result['bytes']:,} bytes; target <= 2,000,000)",
        f"version      {result['version']}  oos threshold {result['threshold']}",
        f"CLINC150 {split} {result['queries']} queries ({counts})",
        f"  in-scope accuracy {ort['in_scope_accuracy']:.4f} (target >= 0.935)",
        f"  oos recall        {ort['oos_recall']:.4f} (target >= 0.50)",
        f"  macro F1          {ort['macro_f1']:.4f}",
        "latency, featurise + infer, one query at a time (us):",
    ]
    for name, label in (("onnxruntime", "onnxruntime, 1 thread"), ("numpy", "onnx_lite numpy"),
                        ("pure", "onnx_lite pure Python")):
        lines.append(f"  {label:<24} p50 {result[name]['p50_us']:>8.1f}  p99 {result[name]['p99_us']:>8.1f}")
    lines.append("  (target: onnxruntime p99 <= 100)")
    for name in ("numpy", "pure"):
        worst, differ = result[f"max_abs_diff_{name}"], result[f"intent_disagreements_{name}"]
        lines.append(f"parity {name:<6} vs onnxruntime: max |diff| {worst:.2e} (target <= 1e-5), "
                     f"predicted intent differs on {differ}")
    abuse = result["abuse"]
    lines += [
        f"abuse: blocked by the shipped policy (intent-head abuse from {abuse['abuse_min_confidence']}"
        + (f" unless the decision head reads a benign decision at >= {min(overrule.values())}"
           if (overrule := abuse.get("abuse_unless_decided")) else "") + ", or the decision head's abuse):",
        f"  bastioncorpus attacks, held out        {abuse['attacks_heldout_blocked']:.3f} of "
        f"{abuse['attacks_heldout_n']}",
        f"  bastioncorpus attacks, all             {abuse['attacks_all_blocked']:.3f} of {abuse['attacks_all_n']} "
        "(80 % were trained on)",
        f"  benign look-alikes, held out           {abuse['benign_traps_heldout_blocked']:.3f} of "
        f"{abuse['benign_traps_heldout_n']}",
        f"  {'CLINC150 ' + split + ', wrongly':<39}{abuse['clinc_blocked']:.4f} of {abuse['clinc_n']}",
        f"  load-test questions, wrongly           {abuse['load_test_questions_blocked'] or 0:.4f} of "
        f"{abuse['load_test_questions_n']} (highest abuse reading {abuse['load_test_max_abuse_confidence']:.3f})",
        "  trade-off, blocked if the abuse reading >= min_confidence:",
        f"    min_conf  attacks held out  attacks all  traps held out  CLINC {split:<4}  load test",
    ]
    for floor, row in abuse["sweep"].items():
        lines.append(f"    {floor:<8}  {row['attacks_heldout']:>16.3f}  {row['attacks_all']:>11.3f}  "
                     f"{row['benign_traps_heldout']:>14.3f}  {row['clinc']:>10.4f}  "
                     f"{row['load_test_questions'] or 0:>9.4f}")
    lines.append("decisions on held-out parts, routed by the shipped policy:")
    for source, report in result["decisions_heldout"].items():
        def pct(value: float | None) -> str:
            return "-" if value is None else f"{100 * value:.1f} %"

        lines.append(f"  {source} ({report['examples']} rows with a decision): shareable answered from the edge "
                     f"for a second user {pct(report['shareable_second_user_from_edge'])}, personal served "
                     f"across users {pct(report['personal_crosses_users'])}, time-sensitive older than 300 s "
                     f"{pct(report['time_sensitive_over_300s'])}")
        for gold, row in report["decisions"]["confusion"].items():
            lines.append(f"    {gold:<15} -> " + ", ".join(f"{p} {n}" for p, n in row.items()))
    return "\n".join(lines)


def write_fixture(path: Path, model: Path | None) -> None:
    """~200 dev queries (shared/intent/corpus.py, never the held-out part) with onnxruntime's outputs of
    both heads, for parity checks without onnxruntime."""
    from shared.intent.corpus import load_corpus

    data, source = read_model(model)
    reference = OnnxIntentClassifier(data, runtime="onnxruntime", source=source)
    dev = load_corpus(abuse=False).parts["dev"]
    step = max(1, len(dev) // FIXTURE_QUERIES)
    rows = []
    for ex in dev[::step][:FIXTURE_QUERIES]:
        heads = reference.runtime.heads(reference.features(ex.text))
        rows.append({"text": ex.text, "label": ex.label, "decision": ex.decision,
                     "probs": [round(p, 7) for p in heads[0]],
                     "decision_probs": [round(p, 7) for p in heads[1]] if len(heads) > 1 else []})
    name = DEFAULT_MODEL.name if model is None else str(model)
    fixture = {"model_version": reference.version, "model": name, "runtime": "onnxruntime", "queries": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.intent.bench", description=__doc__)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--clinc", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-parity-fixture", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    clinc = args.clinc or default_clinc()
    if args.write_parity_fixture:
        write_fixture(args.write_parity_fixture, args.model)
        return 0
    result = run(args.model, clinc)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
