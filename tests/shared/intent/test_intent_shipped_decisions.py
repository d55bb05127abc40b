"""The shipped model and policy on the corpus's dev website prompts: a floor under the decision quality.

Dev, not held out: these are the rows the settings were chosen on (shared/intent/README.md), so the bounds
guard against a retrain or a policy edit that quietly undoes the work, not a claim about unseen prompts.
On the dev of the third model (1,322 website prompts of every file) the third model (ReLU layer) scored
90.1 % / 1.2 % / 1.1 %; the model before it (linear heads) 68.8 % / 0.9 % / 1.1 % and fails this test, as
does the same linear model retrained on that data (84.9 %). On the dev of the fourth model (1,610) it scored
89.3 % / 0.83 % / 1.33 %; on today's (1,909) the shipped fifth model scores 89.2 % / 0.85 % / 0.91 %."""

from __future__ import annotations

from shared.intent import load_classifier, load_policy
from shared.intent.corpus import load_corpus
from shared.intent.evaluate import route_report


def test_dev_website_prompts_route_well() -> None:
    corpus = load_corpus(abuse=False)
    rows = [ex for source, parts in corpus.sources.items() if source != "clinc" for ex in parts["dev"]]
    report = route_report(load_classifier(runtime="pooled"), load_policy(), rows)
    assert report["examples"] >= 1200
    assert report["shareable_second_user_from_edge"] >= 0.88
    assert report["personal_crosses_users"] <= 0.015
    assert report["time_sensitive_over_300s"] <= 0.015


# Issue 16's own examples, quoted. They are training data now (the first question banks, scored once, became
# website_prompts_banks1.jsonl), so this checks that what the issue reported is fixed, not judgement.
ISSUE_EXAMPLES = {
    ("cache", "shared"): ["How do I reset my password?", "What are your opening hours?",
                          "What is your return policy?", "How do I contact customer support?",
                          "What is the capital of France?", "Write a haiku about the sea."],
    ("origin", "none"): ["What's on my calendar tomorrow?", "Text Sarah that I'm running late.",
                         "Where did I park my car?"],
    ("cache", "user"): ["How many people are in the queue right now?"],
}


def test_the_issues_examples_are_routed_as_the_issue_asks() -> None:
    classifier, policy = load_classifier(runtime="pooled"), load_policy()
    for (action, scope), prompts in ISSUE_EXAMPLES.items():
        for prompt in prompts:
            route = policy.route(classifier.classify(prompt), prompt)
            assert (route.action, route.scope) == (action, scope), prompt
            if scope == "user":
                assert route.ttl_s is not None and route.ttl_s + route.stale_s <= 300, prompt
