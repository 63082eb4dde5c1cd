"""Measure the prompt policy: precision and recall per category and overall, and check time.

    python benchmarks/policy.py                  # held-out ("test") split, then timings
    python benchmarks/policy.py --split dev      # the development split instead
    python benchmarks/policy.py --tune           # suggest thresholds and margin from dev
    python benchmarks/policy.py --captions 200   # fewer sampled physics-world captions

The labelled prompts are ``tests/safety/prompts.json``: each must be refused for one category
or allowed. Per category, precision is the share of the prompts refused for that category that
are labelled with it, and recall the share of its prompts refused for it (so a refusal that
names the wrong category counts against both). Overall, refusing is the positive class,
whatever category is named. Recall is also broken down by how prompts are written (keyword,
obfuscated, paraphrase). The product's own domain is checked too: ``--captions`` sampled
physics-world captions (half long, half short), of which none should be refused. Timings are
medians over the split's prompts with the encoder warm: one prompt per `check`, and
`check_many` on the whole split, per prompt.

``--tune`` chooses, on the dev split only, each category's similarity threshold and the
benign margin that make the fewest errors among the prompts the rules leave undecided (the
middle of the best range of thresholds, searched from 0.35 to 0.75, and the middle of the best
margins), and prints them as JSON for
``src/kinetoscope/safety/data/exemplars.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from kinetoscope.safety.policy import CATEGORIES, PolicyConfig, PromptPolicy, _encode
from kinetoscope.world.captions import caption
from kinetoscope.world.sampler import sample_scene

PROMPTS = Path(__file__).resolve().parents[1] / "tests" / "safety" / "prompts.json"
THRESHOLDS = [round(0.35 + 0.01 * step, 2) for step in range(41)]  # 0.35 .. 0.75
MARGINS = [round(0.02 * step, 2) for step in range(11)]  # 0 .. 0.2


def load_prompts(split: str) -> list[dict]:
    """The labelled prompts of ``split`` ("dev", "test" or "all")."""
    prompts = json.loads(PROMPTS.read_text(encoding="utf-8"))["prompts"]
    return [item for item in prompts if split == "all" or item["split"] == split]


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def report(policy: PromptPolicy, items: list[dict], title: str) -> None:
    """Print precision and recall per category, overall and per kind, as markdown."""
    decisions = policy.check_many([item["prompt"] for item in items])
    labels = [item["category"] for item in items]
    named = [decision.category for decision in decisions]
    print(f"\n### {title}\n")
    print("| category | prompts | refused for it | precision | recall |")
    print("|---|---|---|---|---|")
    for category in CATEGORIES:
        labelled = sum(label == category for label in labels)
        refused = sum(name == category for name in named)
        right = sum(label == name == category for label, name in zip(labels, named, strict=True))
        print(
            f"| {category} | {labelled} | {refused} | {ratio(right, refused):.3f} "
            f"| {ratio(right, labelled):.3f} |"
        )
    positives = sum(label is not None for label in labels)
    refused = sum(name is not None for name in named)
    hits = sum(
        label is not None and name is not None for label, name in zip(labels, named, strict=True)
    )
    print(
        f"| **any (refuse vs allow)** | {positives} | {refused} | **{ratio(hits, refused):.3f}** "
        f"| **{ratio(hits, positives):.3f}** |"
    )
    allowed = len(labels) - positives
    false_refusals = refused - hits
    print(f"\nallowed prompts: {allowed}, wrongly refused: {false_refusals}")
    for kind in ("keyword", "obfuscated", "paraphrase"):
        rows = [i for i, item in enumerate(items) if item["kind"] == kind]
        caught = sum(named[i] == labels[i] for i in rows)
        print(f"- recall on {kind} prompts (right category): {caught}/{len(rows)}")
    for item, decision in zip(items, decisions, strict=True):
        if decision.category != item["category"]:
            print(f"  - wrong: {item['prompt']!r} labelled {item['category']}: {decision.reason}")


def time_checks(policy: PromptPolicy, items: list[dict]) -> None:
    """Median seconds per prompt: one at a time, and in one batch."""
    prompts = [item["prompt"] for item in items]
    policy.check_many(prompts)  # warm: encoder loaded, examples embedded
    singles = []
    for prompt in prompts:
        start = time.perf_counter()
        policy.check(prompt)
        singles.append(time.perf_counter() - start)
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        policy.check_many(prompts)
        batches.append((time.perf_counter() - start) / len(prompts))
    print(
        f"- {'with encoder' if policy.config.use_encoder else 'rules only'}: "
        f"check {1000 * statistics.median(singles):.2f} ms per prompt (median of {len(prompts)}), "
        f"check_many {1000 * statistics.median(batches):.2f} ms per prompt "
        f"(batch of {len(prompts)}, median of 5)"
    )


def check_captions(policy: PromptPolicy, count: int) -> None:
    """Print how many of ``count`` sampled physics-world captions the policy refuses."""
    captions, seed = [], 0
    while len(captions) < count:
        try:
            scene = sample_scene(seed, aspect=1.0, seconds=4.0)
        except Exception as exc:  # any sampler failure only costs that seed
            print(f"seed {seed} skipped: {type(exc).__name__}: {exc}")
        else:
            captions.append(caption(scene, "long" if seed % 2 else "short", seed=seed))
        seed += 1
    refused = [
        (text, decision.reason)
        for text, decision in zip(captions, policy.check_many(captions), strict=True)
        if not decision.allowed
    ]
    print(f"\nphysics-world captions refused: {len(refused)} of {count}")
    for text, reason in refused:
        print(f"  - {text!r}: {reason}")


def tune(policy: PromptPolicy) -> None:
    """Suggest thresholds and margin from the dev split (see the module docstring)."""
    items = load_prompts("dev")
    rules_only = PromptPolicy(PolicyConfig(use_encoder=False))
    undecided = [item for item in items if rules_only.check(item["prompt"]).allowed]
    meanings = policy._embedded()
    per_category, benign = meanings.scores(
        _encode(policy._encoder_or_shared(), [item["prompt"] for item in undecided])
    )  # (N, C), (N,)
    results = {}  # margin -> (total errors, thresholds)
    for margin in MARGINS:
        total, thresholds = 0, {}
        for index, category in enumerate(CATEGORIES):
            errors = [
                category_errors(undecided, per_category[:, index], benign, category, t, margin)
                for t in THRESHOLDS
            ]
            fewest = min(errors)
            at_best = [t for t, e in zip(THRESHOLDS, errors, strict=True) if e == fewest]
            thresholds[category] = round((at_best[0] + at_best[-1]) / 2, 2)
            total += fewest
            print(
                f"margin {margin:.2f} {category}: {fewest} errors at "
                f"{at_best[0]:.2f}-{at_best[-1]:.2f}"
            )
        results[margin] = (total, thresholds)
    fewest = min(total for total, _ in results.values())
    best_margins = [margin for margin, (total, _) in results.items() if total == fewest]
    margin = best_margins[len(best_margins) // 2]  # the middle of the best margins
    print(f"\nfewest errors on dev among {len(undecided)} undecided prompts: {fewest}")
    print(json.dumps({"thresholds": results[margin][1], "margin": margin}))


def category_errors(items, scores, benign, category, threshold, margin) -> int:
    """Errors of one category's rule "score >= threshold and score - benign >= margin" on the
    items labelled with it or allowed (prompts of other categories do not count)."""
    refuses = (scores >= threshold) & (scores - benign >= margin)
    return sum(
        bool(refuse) != (item["category"] == category)
        for refuse, item in zip(refuses.tolist(), items, strict=True)
        if item["category"] in (None, category)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("dev", "test", "all"))
    parser.add_argument("--tune", action="store_true", help="suggest thresholds from dev")
    parser.add_argument("--captions", type=int, default=1000, help="world captions to check")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    policy = PromptPolicy()
    if args.tune:
        tune(policy)
        return
    items = load_prompts(args.split)
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{len(items)} prompts ({args.split} split)"
    )
    report(policy, items, f"rules and meaning, {args.split} split")
    report(PromptPolicy(PolicyConfig(use_encoder=False)), items, f"rules only, {args.split} split")
    check_captions(policy, args.captions)
    print("\n### check time\n")
    time_checks(policy, items)
    time_checks(PromptPolicy(PolicyConfig(use_encoder=False)), items)


if __name__ == "__main__":
    main()
