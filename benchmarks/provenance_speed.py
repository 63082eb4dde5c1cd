"""Time C2PA signing and `kinetoscope verify` on a 4 s, 128x224 mp4 of a physics-world scene.

    python benchmarks/provenance_speed.py [--repeats 30]

Prints the medians (and ranges) of `sign_video`, `read_manifest` and `verify_file` (manifest
plus watermark),"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import torch

from kinetoscope.io.video import write_video
from kinetoscope.provenance.c2pa import ProvenanceRecord, read_manifest, sign_video
from kinetoscope.provenance.identity import load_identity
from kinetoscope.provenance.verify import verify_file
from kinetoscope.world.render import render
from kinetoscope.world.sampler import sample_scene


def timed(action, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return times


def row(name: str, times: list[float]) -> str:
    median = statistics.median(times)
    spread = f"{min(times) * 1000:.1f}-{max(times) * 1000:.1f} ms"
    return f"| {name} | {median * 1000:.1f} ms | {spread} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    try:
        scene = sample_scene(0, aspect=16 / 9, seconds=4.0)
        clip = render(scene, width=224, height=128, fps=16)  # 65 frames of 128x224
        source = write_video(folder / "clip.mp4", clip)
        identity = load_identity(folder / "config")
        record = ProvenanceRecord("kinetoscope", "0" * 64, {"prompt": "A red circle falls."})

        def sign() -> None:
            target = folder / f"{uuid.uuid4().hex}.mp4"
            shutil.copyfile(source, target)
            sign_video(target, record, identity)

        signed = folder / "signed.mp4"
        shutil.copyfile(source, signed)
        sign_video(signed, record, identity)
        anchors = [identity.root_ca_path] if identity.root_ca_path else None
        rows = [
            row("sign_video (copy + sign)", timed(sign, args.repeats)),
            row("read_manifest", timed(lambda: read_manifest(signed, anchors), args.repeats)),
            row(
                "verify_file (manifest + watermark)",
                timed(lambda: verify_file(signed, anchors), args.repeats),
            ),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; 4 s 128x224 mp4, "
        f"{args.repeats} runs each\n"
    )
    print("| step | median | range |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
