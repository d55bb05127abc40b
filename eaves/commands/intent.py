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
    train.add_argument("--data", action="append", required=True, metavar="FILE",
                       help="labelled training text (repeat to combine files)")
    train.add_argument("--out", required=True, type=Path, metavar="MODEL", help="the .onnx file to write")
    train.add_argument("--val", action="append", metavar="FILE",
                       help="validation text (default: hold out --val-fraction of the training data)")
    train.add_argument("--val-fraction", type=float, default=0.1, help="default: %(default)s")
    train.add_argument("--domains", type=Path, help="JSON object of domain -> [labels] (e.g. CLINC150's)")
    train.add_argument("--abuse-corpus", action="store_true",
                       help="add prompt-injection and abuse examples (bastioncorpus + the shipped seed list) "
                       "as labels in the 'abuse' domain, and ordinary support questions as out-of-scope")
    train.add_argument("--dim", type=int, default=96, help="embedding size (default: %(default)s)")
    train.add_argument("--buckets", type=int, default=19000, help="hash buckets (default: %(default)s)")
    train.add_argument("--char-min", type=int, default=3, help="default: %(default)s")
    train.add_argument("--char-max", type=int, default=4, help="default: %(default)s")
    train.add_argument("--epochs", type=int, default=20, help="default: %(default)s")
    train.add_argument("--lr", type=float, default=0.01, help="default: %(default)s")
    train.add_argument("--dropout", type=float, default=0.5, help="default: %(default)s")
    train.add_argument("--average-from", type=float, default=0.5,
                       help="average the weights of the epochs from this share of training on "
                       "(default: %(default)s)")
    train.add_argument("--smoothing", type=float, default=0.0, help="label smoothing (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    train.add_argument("--oos-recall", type=float, default=0.5,
                       help="tune the out-of-scope threshold to reach this recall on validation "
                       "(default: %(default)s)")
    train.add_argument("--threshold", type=float, help="set the out-of-scope threshold instead of tuning it")
    train.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    train.set_defaults(func=cmd_train)

    ev = intent.add_parser("eval", help="score a model on labelled text")
    ev.add_argument("--model", type=Path, help="the .onnx file (default: the shipped model)")
    ev.add_argument("--data", required=True, action="append", metavar="FILE", help="labelled text")
    ev.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "lite", "numpy", "pure"])
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_eval)

    cl = intent.add_parser("classify", help="print the intent and the route for a text")
    cl.add_argument("text")
    cl.add_argument("--model", type=Path, help="default: the shipped model")
    cl.add_argument("--policy", type=Path, help="default: the shipped policy")
    cl.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "lite", "numpy", "pure"])
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
    from shared.intent import load_classifier
    from shared.intent.dataset import DatasetError
    from shared.intent.evaluate import evaluate
    from shared.onnx_lite import OnnxLiteError

    try:
        examples = _load(args.data)
        classifier = load_classifier(args.model, runtime=args.runtime)
    except (DatasetError, OnnxLiteError) as exc:
        print(f"eaves intent eval: {exc}", file=sys.stderr)
        return 2
    result = evaluate(classifier, examples)
    result["runtime"] = classifier.runtime.name
    result["model"] = classifier.version
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    return 0


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
    route = policy.route(intent)
    if args.json:
        print(json.dumps({"label": intent.label, "domain": intent.domain, "confidence": intent.confidence,
                          "action": route.action, "ttl_s": route.ttl_s, "stale_s": route.stale_s,
                          "stale_if_error_s": route.stale_if_error_s, "timeout_s": route.timeout_s,
                          "answer": route.answer, "reason": route.reason}))
    else:
        print(f"intent: {intent.label} (domain {intent.domain}, confidence {intent.confidence:.3f})")
        extra = f", ttl {route.ttl_s} s, stale {route.stale_s} s" if route.action == "cache" else ""
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
