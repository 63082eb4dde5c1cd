"""Measure the judge as an instrument and write the tables in docs/judge.md.

    python benchmarks/judge_validation.py                 # print the tables
    python benchmarks/judge_validation.py --update docs/judge.md

Tables: mean score per dimension of true renders over sampled scenes at 128x128 (as rendered
and after H.264 at crf 28) and at 64x64, and the corruption table (dimension x corruption) at
both sizes, with the clean scores of the same scenes beside each for comparison.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import time
from pathlib import Path

import torch

from kinetoscope.world.corrupt import CORRUPTIONS
from kinetoscope.world.judge import DIMENSIONS
from kinetoscope.world.validation import ScoreTable, corruption_scores, ground_truth_scores

START, END = "<!-- validation:start -->", "<!-- validation:end -->"
SHORT = {
    "object_count": "count",
    "color": "colour",
    "shape": "shape",
    "size": "size",
    "motion_direction": "direction",
    "trajectory": "trajectory",
    "permanence": "permanence",
    "temporal_consistency": "consistency",
    "background_stability": "background",
}


def ground_truth_section(seeds: range) -> str:
    rows = []
    for label, size, crf in (
        ("128x128, as rendered", 128, None),
        ("128x128, H.264 crf 28", 128, 28),
        ("64x64, as rendered", 64, None),
        ("64x64, H.264 crf 28", 64, 28),
    ):
        began = time.perf_counter()
        table = ground_truth_scores(seeds, size=size, crf=crf)
        seconds = (time.perf_counter() - began) / len(table)
        print(f"{label}: {seconds:.2f} s per clip (render, encode, judge)")
        low = min(table.means().values())
        rows.append(_row(label, table, extra=f"{low:.3f}"))
    header = _header("true renders", extra="lowest")
    return (
        f"Mean over {len(seeds)} sampled scenes (seeds {seeds.start}-{seeds.stop - 1}):\n\n"
        + "\n".join([header, *rows])
    )


def corruption_section(seeds: range, size: int) -> str:
    clean_for, corrupted = corruption_scores(seeds, size=size)
    lines = [_header("corruption", extra="scenes")]
    for name, corruption in CORRUPTIONS.items():
        bad, clean = corrupted[name], clean_for[name]
        if not len(bad):
            continue
        cells = []
        for d in DIMENSIONS:
            text = f"{bad.mean(d):.2f}"
            if d in corruption.lowers:
                text = f"**{text}**"
            elif d in corruption.may_lower:
                text = f"_{text}_"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(bad)} |")
        lines.append(
            "| (same scenes, clean) | "
            + " | ".join(f"{clean.mean(d):.2f}" for d in DIMENSIONS)
            + f" | {len(clean)} |"
        )
    intro = (
        f"{size}x{size}, seeds {seeds.start}-{seeds.stop - 1}. **Bold**: the dimensions the "
        "corruption must lower; _italic_: dimensions it may lower too because the physics ties "
        "them to the corruption; each corruption's row is followed by the clean scores of the "
        "same scenes.\n\n"
    )
    return intro + "\n".join(lines)


def _header(first: str, extra: str) -> str:
    names = " | ".join(SHORT[d] for d in DIMENSIONS)
    return f"| {first} | {names} | {extra} |\n|" + "---|" * (len(DIMENSIONS) + 2)


def _row(label: str, table: ScoreTable, extra: str) -> str:
    return (
        f"| {label} | " + " | ".join(f"{table.mean(d):.3f}" for d in DIMENSIONS) + f" | {extra} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="scenes for the true renders")
    parser.add_argument("--corruption-seeds", type=int, default=40, help="scenes per corruption")
    parser.add_argument("--update", type=Path, help="rewrite the tables in this markdown file")
    args = parser.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    parts = [
        f"Measured {datetime.date.today()} on {machine}, torch {torch.__version__}.",
        "### True renders\n\n" + ground_truth_section(range(1000, 1000 + args.seeds)),
        "### Corruptions at 128x128\n\n"
        + corruption_section(range(2000, 2000 + args.corruption_seeds), 128),
        "### Corruptions at 64x64\n\n"
        + corruption_section(range(2000, 2000 + args.corruption_seeds), 64),
    ]
    text = "\n\n".join(parts)
    print(text)
    if args.update is not None:
        document = args.update.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
        args.update.write_text(pattern.sub(f"{START}\n{text}\n{END}", document), encoding="utf-8")


if __name__ == "__main__":
    main()
