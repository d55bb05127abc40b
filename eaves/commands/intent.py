"""``eaves intent``: train, evaluate and try the edge's intent classifier and routing policy.

    eaves intent train --data intents.jsonl --out model.onnx            # 10 % held out for validation
    eaves intent train --data train.csv --val val.csv --out model.onnx
    eaves intent eval --model model.onnx --data test.jsonl --json
    eaves intent classify "hi there"                                   # shipped model and policy
    eaves intent bench                                                 # the shipped model's figures
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULTS_NOTE = "defaults are the settings of the shipped model"


def register(sub: Any) -> None:
    parser = sub.add_parser("intent", help="train, evaluate and try the intent classifier",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    intent = parser.add_subparsers(dest="intent_command", metavar="ACTION", required=True)

    train = intent.add_parser("train", help="train a model on labelled text and export one .onnx file",
                              description="Train an intent model. Data: JSON, JSONL or CSV rows of text and "
                              "label (optional domain); the label 'oos' marks out-of-scope text. "
                              "JSON files of named splits take FILE#split,split. " + DEFAULTS_NOTE + ".")
    train.add_argument("--data", action="append", metavar="FILE",
                       help="labelled training text (repeat to combine files)")
    train.add_argument("--corpus", action="store_true",
                       help="train on the shipped corpus (shared/intent/corpus.py: CLINC150 with decisions, "
                       "website prompts, abuse), choosing on its dev part; what scripts/train-intent runs")
    train.add_argument("--intents", choices=["clinc150", "acts"], default="clinc150",
                       help="with --corpus: the intent head's labels: CLINC150's 150 intents, or the "
                       "conversation acts alone (its small_talk and meta intents; every other prompt is 'oos') "
                       "beside the abuse labels (default: %(default)s)")
    train.add_argument("--no-abuse", action="store_true", help="with --corpus: leave out bastioncorpus")
    train.add_argument("--clinc-val", choices=["train", "heldout", "half1", "half2"], default="train",
                       help="with --corpus: where CLINC150's val split goes: it all trains (the shipped model), "
                       "none of it does, or that half is held out and the other trains (how the shipped "
                       "threshold was cross-fitted) (default: %(default)s)")
    train.add_argument("--slice", type=int, default=0, metavar="N",
                       help="with --corpus: every Nth row only (a quick end-to-end check)")
    train.add_argument("--augment", action="store_true",
                       help="with --corpus: website repeats are varied (greetings, typos, case), not copies")
    train.add_argument("--website-repeat", type=int, default=4,
                       help="with --corpus: how often each website prompt is repeated in training "
                       "(default: %(default)s)")
    train.add_argument("--website-oos", type=float, default=0.0, metavar="CONFIDENCE",
                       help="with --corpus: a first, shorter training reads every website prompt (not small "
                       "talk or abuse); those it gives no CLINC150 intent with at least this confidence train the "
                       "intent head as out-of-scope, the rest leave it alone (default: off)")
    train.add_argument("--clinc-decisions", type=float, default=0.2, metavar="SHARE",
                       help="with --corpus: the share of CLINC150's rows whose mapped decision trains the "
                       "decision head (default: %(default)s)")
    train.add_argument("--teacher", default=None, metavar="FILE",
                       help="the teacher's vectors of the training texts (shared/intent/teacher.py), "
                       "for --distil-embedding")
    train.add_argument("--distil-embedding", type=float, default=0.0,
                       help="weight of the loss that pulls each row's pooled average, through a linear map left out "
                       "of the file, towards the teacher's vector of its text (default: off)")
    train.add_argument("--decision-weight", type=float, default=1.0,
                       help="the decision head's share of the loss (default: %(default)s)")
    train.add_argument("--max-leak", type=float, default=0.01,
                       help="tune the decision floors so that at most this share of personal or "
                       "time-sensitive validation rows is decided shareable (default: %(default)s)")
    train.add_argument("--policy", default=None, metavar="FILE",
                       help="the routing policy whose routes say which mistakes serve a prompt to the wrong user "
                            "when tuning the floors (default: the shipped one; 'none': the fixed table "
                            "train.LEAKS)")
    train.add_argument("--abuse-floor", type=float, default=0.5,
                       help="decide abuse from this probability on (default: %(default)s)")
    train.add_argument("--out", required=True, type=Path, metavar="MODEL", help="the .onnx file to write")
    train.add_argument("--val", action="append", metavar="FILE",
                       help="validation text (default: hold out --val-fraction of the training data)")
    train.add_argument("--val-fraction", type=float, default=0.1, help="default: %(default)s")
    train.add_argument("--domains", type=Path, help="JSON object of domain -> [labels] (e.g. CLINC150's)")
    train.add_argument("--abuse-corpus", action="store_true",
                       help="add prompt-injection and abuse examples (bastioncorpus + the shipped seed list) "
                       "as labels in the 'abuse' domain, and ordinary support questions as out-of-scope")
    train.add_argument("--dim", type=int, default=96, help="embedding size (default: %(default)s)")
    train.add_argument("--hidden", type=int, default=0, metavar="H",
                       help="width of a ReLU layer between the pooled embedding and the heads (default: none)")
    train.add_argument("--hidden-heads", choices=["decision", "both"], default="decision",
                       help="which heads read the hidden layer (default: %(default)s)")
    train.add_argument("--buckets", type=int, default=19000, help="hash buckets (default: %(default)s)")
    train.add_argument("--char-min", type=int, default=3, help="default: %(default)s")
    train.add_argument("--char-max", type=int, default=4, help="default: %(default)s")
    train.add_argument("--word-ngrams", type=int, default=2, help="word n-grams up to this length "
                       "(default: %(default)s)")
    train.add_argument("--start-mark", action="store_true",
                       help="word n-grams also start at a marker before the first word")
    train.add_argument("--epochs", type=int, default=20, help="default: %(default)s")
    train.add_argument("--lr", type=float, default=0.01, help="default: %(default)s")
    train.add_argument("--dropout", type=float, default=0.5, help="default: %(default)s")
    train.add_argument("--average-from", type=float, default=0.5,
                       help="average the weights of the epochs from this share of training on "
                       "(default: %(default)s)")
    train.add_argument("--smoothing", type=float, default=0.0, help="label smoothing (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    train.add_argument("--oos-shift", action="store_true",
                       help="lower the out-of-scope label's bias as far as --oos-recall on validation allows "
                       "(for a model that reads more out-of-scope text than wanted, e.g. with --website-oos)")
    train.add_argument("--oos-recall", type=float, default=0.5,
                       help="tune the out-of-scope threshold to reach this recall on validation "
                       "(default: %(default)s)")
    train.add_argument("--threshold", type=float, help="set the out-of-scope threshold instead of tuning it")
    train.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    train.set_defaults(func=cmd_train)

    ev = intent.add_parser("eval", help="score a model on labelled text")
    ev.add_argument("--model", type=Path, help="the .onnx file (default: the shipped model)")
    ev.add_argument("--data", required=True, action="append", metavar="FILE", help="labelled text")
    ev.add_argument("--policy", type=Path, help="the routing policy (default: the shipped one)")
    ev.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "pooled", "lite", "numpy", "pure"])
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_eval)

    cl = intent.add_parser("classify", help="print the intent and the route for a text")
    cl.add_argument("text")
    cl.add_argument("--model", type=Path, help="default: the shipped model")
    cl.add_argument("--policy", type=Path, help="default: the shipped policy")
    cl.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "pooled", "lite", "numpy", "pure"])
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_classify)

    bench = intent.add_parser("bench", help="the shipped model's accuracy, latency, parity and abuse figures")
    bench.add_argument("--model", type=Path, help="default: the shipped model")
    bench.add_argument("--clinc", type=Path, help="CLINC150 folder (default: ../shared/data/clinc150)")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=cmd_bench)


def _load(specs: list[str]) -> Any:
    from shared.intent.dataset import load_examples

    return [ex for spec in specs for ex in load_examples(spec)]


def cmd_train(args: argparse.Namespace) -> int:
    from shared.intent.dataset import DatasetError
    from shared.intent.train import train_command

    try:
        return train_command(args)
    except DatasetError as exc:
        print(f"eaves intent train: {exc}", file=sys.stderr)
        return 2


def cmd_eval(args: argparse.Namespace) -> int:
    from shared.intent import PolicyError, load_classifier, load_policy
    from shared.intent.dataset import DatasetError
    from shared.intent.evaluate import evaluate, route_report
    from shared.onnx_lite import OnnxLiteError

    try:
        examples = _load(args.data)
        classifier = load_classifier(args.model, runtime=args.runtime)
        policy = load_policy(args.policy)
    except (DatasetError, OnnxLiteError, PolicyError) as exc:
        print(f"eaves intent eval: {exc}", file=sys.stderr)
        return 2
    result = evaluate(classifier, examples)
    result["runtime"] = classifier.runtime.name
    result["model"] = classifier.version
    result["policy"] = policy.version
    result["routing"] = route_report(classifier, policy, examples)
    if args.json:
        print(json.dumps(result))
    else:
        print(render_eval(result))
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def render_eval(result: dict[str, Any]) -> str:
    lines = [f"{result['examples']} rows; model {result['model']} ({result['runtime']}), policy {result['policy']}",
             f"latency p50 {result['p50_us']} us, p99 {result['p99_us']} us"]
    if result.get("in_scope_accuracy") is not None or result.get("oos_recall") is not None:
        lines.append(f"intents: in-scope accuracy {_pct(result['in_scope_accuracy'])}, "
                     f"out-of-scope recall {_pct(result['oos_recall'])}, macro F1 {result['macro_f1']:.3f}")
    routing = result["routing"]
    if routing["examples"]:
        lines.append(f"decisions ({routing['examples']} rows with one): accuracy "
                     f"{_pct(routing['decisions']['accuracy'])}")
        for label, entry in routing["labels"].items():
            routes = ", ".join(f"{kind} {_pct(share)}" for kind, share in entry["routes"].items())
            cross = "" if entry["crosses_users"] is None else f"; served across users {_pct(entry['crosses_users'])}"
            lines.append(f"  {label:<15} n={entry['n']:<5} second user from the edge "
                         f"{_pct(entry['second_user_from_edge'])}{cross}; routes: {routes}")
        lines.append("  confusion (gold -> decided: count):")
        for gold, row in routing["decisions"]["confusion"].items():
            lines.append(f"    {gold:<15} " + ", ".join(f"{p} {n}" for p, n in row.items()))
    return "\n".join(lines)


def cmd_classify(args: argparse.Namespace) -> int:
    from shared.intent import PolicyError, load_classifier, load_policy
    from shared.onnx_lite import OnnxLiteError

    try:
        classifier = load_classifier(args.model, runtime=args.runtime)
        policy = load_policy(args.policy)
    except (OnnxLiteError, PolicyError) as exc:
        print(f"eaves intent classify: {exc}", file=sys.stderr)
        return 2
    intent = classifier.classify(args.text)
    route = policy.route(intent, args.text)  # with the text, as the edge routes: [records], [freshness] read it
    if args.json:
        print(json.dumps({"label": intent.label, "domain": intent.domain, "confidence": intent.confidence,
                          "action": route.action, "ttl_s": route.ttl_s, "stale_s": route.stale_s,
                          "stale_if_error_s": route.stale_if_error_s, "timeout_s": route.timeout_s,
                          "answer": route.answer, "reason": route.reason, "scope": route.scope,
                          "decision": intent.decision, "decision_confidence": intent.decision_confidence,
                          "decision_probabilities": dict(intent.decision_probabilities)}))
    else:
        print(f"intent: {intent.label} (domain {intent.domain}, confidence {intent.confidence:.3f})")
        if intent.decision:
            spread = ", ".join(f"{name} {p:.3f}" for name, p in intent.decision_probabilities)
            print(f"decision: {intent.decision} (confidence {intent.decision_confidence:.3f}; {spread})")
        extra = (f", scope {route.scope}, ttl {route.ttl_s} s, stale {route.stale_s} s"
                 if route.action == "cache" else "")
        print(f"route:  {route.action}{extra} ({route.reason})")
        if route.answer:
            print(f"answer: {route.answer}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from shared.intent.bench import main

    argv = []
    if args.model:
        argv += ["--model", str(args.model)]
    if args.clinc:
        argv += ["--clinc", str(args.clinc)]
    if args.json:
        argv.append("--json")
    return main(argv)
