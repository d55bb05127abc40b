"""The shipped model and policy on the corpus's dev website prompts: a floor under the decision quality.

Dev, not held out: these are the rows the settings were chosen on (shared/intent/README.md), so the bounds
guard against a retrain or a policy edit that quietly undoes the work, not a claim about unseen prompts.
The first two-head model (580da8f) scores 66.2 % / 5.5 % / 2.3 % here and fails this test; the shipped
one 78.4 % / 1.5 % / 1.5 % with time-sensitive answers shared, 72.7 % / 1.0 % / 1.5 % with them kept per user
(the shipped policy: a personal question misread as time-sensitive then reaches no other user)."""

from __future__ import annotations

from shared.intent import load_classifier, load_policy
from shared.intent.corpus import load_corpus
from shared.intent.evaluate import route_report


def test_dev_website_prompts_route_well() -> None:
    corpus = load_corpus(abuse=False)
    rows = corpus.sources["website"]["dev"] + corpus.sources["website2"]["dev"]
    report = route_report(load_classifier(runtime="pooled"), load_policy(), rows)
    assert report["examples"] >= 500
    assert report["shareable_second_user_from_edge"] >= 0.70
    assert report["personal_crosses_users"] <= 0.015
    assert report["time_sensitive_over_300s"] <= 0.02
