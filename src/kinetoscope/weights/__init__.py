"""Where the models that ship inside the package live.

``default/`` is the default pipeline folder (``model_index.json``, ``vae/``, ``transformer/``);
its ``vae/`` is also the shipped autoencoder on its own (for ``kinetoscope eval vae`` and as the
autoencoder new transformers train on). Weights are bf16 safetensors, no file over 15 MiB.
"""

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "default"
SHIPPED_VAE_DIR = DEFAULT_MODEL_DIR / "vae"
