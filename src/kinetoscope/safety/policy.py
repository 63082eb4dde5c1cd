"""Prompt policy: prompts are checked against harmful categories before any compute is spent.

Categories (`CATEGORIES`, each with a human label in `CATEGORY_LABELS`):

    minors_sexual      sexual content involving minors; always refused, cannot be disabled
    real_people        named real public figures, and deepfakes or fabricated words or deeds
                       of real people (a named neighbour as much as a head of state)
    graphic_violence   gore, mutilation, torture, killing shown in detail, mass shootings;
                       not action words: "a ball smashes into the wall" is fine
    hate               dehumanising or demeaning people for their race, religion, sex,
                       sexuality, disability or origin; hate symbols and slogans

How a prompt is judged (`PromptPolicy.check`; `check_many` does the same for a batch):

1. Normalise. Accents are stripped and case folded; punctuation separates words; simple
   obfuscations are undone: leetspeak inside words ("k1ll", "$hoot"), letters spelt out with
   spaces or dots ("k i l l", "k.i.l.l"), stretched letters ("kiiill"), masked letters
   ("k*ll"), hyphenated words ("de-capitated"). An empty or blank prompt is allowed at once.
2. Rules, from package data (``data/rules.json`` and ``data/public_figures.json``): phrases
   ("mass shooting*", "kill* {person}", where ``word*`` is any word starting so and
   ``{group}`` any word of a named group; articles and possessives between words are skipped),
   co-occurrences anywhere in the prompt (a word for a minor together with a sexual word), and
   the names of real public figures (full names, and surnames only where unambiguous).
3. Meaning, for prompts no rule refused: the prompt (and each of its sentences) is embedded
   with the project's frozen MiniLM sentence encoder and compared, by cosine similarity, with
   curated example sentences of each category (``data/exemplars.json``). A category refuses when
   its best similarity reaches its threshold and beats the best similarity to benign example
   sentences (the physics world's own captions, action words, ordinary people) by the margin.
   Thresholds and margin were chosen on a labelled development set and checked on a separate
   held-out set (``benchmarks/policy.py``). This catches English paraphrases that use no
   listed word.

A refusal names one category: rules before meaning; among rules, the first category in
`CATEGORIES` order (names first within real_people); among meanings, the category furthest
over its threshold.

Configuration (`PolicyConfig`): the enabled categories (``minors_sexual`` is always added),
whether to use the encoder (off: rules only, quick to build, misses paraphrases), and extra
phrases per category. `PolicyConfig.from_env` reads ``KINETOSCOPE_POLICY_DISABLE`` (a comma
list of categories) and ``KINETOSCOPE_POLICY_FILE`` (a TOML settings file); asking to disable
``minors_sexual`` there is an error.

Callers pass prompts, not negative prompts: a negative prompt names what to steer away from
("no blood"), so refusing it would be wrong. User documentation: docs/safety.md.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import tomllib
import unicodedata
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from kinetoscope.errors import KinetoscopeError

if TYPE_CHECKING:
    from kinetoscope.models.text import TextEmbedding

__all__ = [
    "ALWAYS_REFUSED",
    "CATEGORIES",
    "CATEGORY_LABELS",
    "DISABLE_ENV",
    "SETTINGS_ENV",
    "PolicyConfig",
    "PolicyDecision",
    "PolicyError",
    "PolicyRefusal",
    "PromptPolicy",
    "PublicFigure",
    "SentenceEncoder",
    "default_policy",
    "example_sentences",
    "load_public_figures",
]

CATEGORIES: tuple[str, ...] = ("minors_sexual", "real_people", "graphic_violence", "hate")
CATEGORY_LABELS: dict[str, str] = {
    "minors_sexual": "sexual content involving minors",
    "real_people": "real people and deepfakes",
    "graphic_violence": "graphic violence",
    "hate": "hate",
}
ALWAYS_REFUSED = "minors_sexual"  # on whatever the configuration says
DISABLE_ENV = "KINETOSCOPE_POLICY_DISABLE"  # e.g. "hate,graphic_violence"
SETTINGS_ENV = "KINETOSCOPE_POLICY_FILE"  # a TOML file: disable = [...], [extra_phrases]
_ENCODE_BATCH = 64  # sentences per encoder call


class PolicyError(KinetoscopeError, ValueError):
    """A policy that cannot be built or a prompt that cannot be checked (not a string, an
    unknown category, a bad settings file); the message names what is wrong."""


class PolicyRefusal(KinetoscopeError, ValueError):  # noqa: N818 (a refusal, not an error)
    """A prompt the policy refuses; ``category`` is one of `CATEGORIES` and the message names
    it."""

    def __init__(self, category: str, reason: str) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason


class SentenceEncoder(Protocol):
    """What the policy needs of a text encoder: `TextEncoder` from `kinetoscope.models.text`."""

    def encode(self, prompts: Sequence[str]) -> TextEmbedding: ...


# ---------------------------------------------------------------------------------------------
# Configuration and decisions


@dataclass(frozen=True)
class PolicyConfig:
    """Which categories a policy refuses, and how it looks.

    ``enabled``: the categories to refuse; ``minors_sexual`` is added whatever is given.
    ``use_encoder``: compare meanings with the sentence encoder (False: rules only).
    ``extra_phrases``: (category, phrase) pairs added to the rules, in the rules' syntax
    (``word*`` for a word's beginning, ``{group}`` for a group of the rules data).
    """

    enabled: frozenset[str] = frozenset(CATEGORIES)
    use_encoder: bool = True
    extra_phrases: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.enabled, str):
            raise PolicyError(
                f"enabled must be a set of categories, not the string {self.enabled!r}"
            )
        enabled = frozenset(self.enabled)
        _check_categories(enabled, "enabled")
        _check_categories({category for category, _ in self.extra_phrases}, "extra_phrases")
        for category, phrase in self.extra_phrases:
            if not isinstance(phrase, str) or not _words(phrase):
                raise PolicyError(f"extra phrase {phrase!r} for {category} has no words")
        object.__setattr__(self, "enabled", enabled | {ALWAYS_REFUSED})
        object.__setattr__(self, "extra_phrases", tuple(self.extra_phrases))

    @classmethod
    def from_settings(
        cls,
        disable: Iterable[str] = (),
        extra_phrases: Mapping[str, Iterable[str]] | None = None,
        use_encoder: bool = True,
    ) -> PolicyConfig:
        """A config with every category but ``disable``; asking to disable
        ``minors_sexual`` is a `PolicyError`."""
        disabled = frozenset(disable)
        _check_categories(disabled, "disable")
        if ALWAYS_REFUSED in disabled:
            raise PolicyError(
                f"{ALWAYS_REFUSED} ({CATEGORY_LABELS[ALWAYS_REFUSED]}) cannot be disabled"
            )
        pairs = tuple(
            (category, phrase)
            for category, phrases in (extra_phrases or {}).items()
            for phrase in _string_list(phrases, f"extra_phrases.{category}")
        )
        return cls(
            enabled=frozenset(CATEGORIES) - disabled, use_encoder=use_encoder, extra_phrases=pairs
        )

    @classmethod
    def from_file(cls, path: str | Path) -> PolicyConfig:
        """A config from a TOML settings file with two optional keys: ``disable``, a list of
        categories to allow, and ``extra_phrases``, a table of category = [phrases] to refuse
        as well. For example::

            disable = ["graphic_violence"]
            [extra_phrases]
            hate = ["some phrase", "another*"]
        """
        path = Path(path)
        try:
            settings = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise PolicyError(f"cannot read the policy settings file {path}: {error}") from error
        unknown = set(settings) - {"disable", "extra_phrases"}
        if unknown:
            raise PolicyError(
                f"policy settings file {path} has unknown keys {sorted(unknown)}; "
                "expected disable and extra_phrases"
            )
        extra = settings.get("extra_phrases", {})
        if not isinstance(extra, dict):
            raise PolicyError(f"extra_phrases in {path} must be a table of category = [phrases]")
        return cls.from_settings(_string_list(settings.get("disable", []), "disable"), extra)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PolicyConfig:
        """The config the environment asks for: the settings file named by
        ``KINETOSCOPE_POLICY_FILE`` (if any), with the categories listed in
        ``KINETOSCOPE_POLICY_DISABLE`` disabled as well; every category when neither is set."""
        environ = os.environ if environ is None else environ
        config = cls.from_file(environ[SETTINGS_ENV]) if environ.get(SETTINGS_ENV) else cls()
        listed = [name.strip().lower() for name in environ.get(DISABLE_ENV, "").split(",")]
        listed = [name for name in listed if name]
        if not listed:
            return config
        disabled = (frozenset(CATEGORIES) - config.enabled) | frozenset(listed)
        extra: dict[str, list[str]] = {}
        for category, phrase in config.extra_phrases:
            extra.setdefault(category, []).append(phrase)
        return cls.from_settings(disabled, extra)


@dataclass(frozen=True)
class PolicyDecision:
    """The verdict on one prompt: ``category`` is None when allowed; ``reason`` is a readable
    sentence that names the category of a refusal."""

    allowed: bool
    category: str | None
    reason: str

    def raise_if_refused(self) -> None:
        """Raise `PolicyRefusal` when this decision refuses."""
        if not self.allowed:
            assert self.category is not None
            raise PolicyRefusal(self.category, self.reason)


_ALLOWED = PolicyDecision(True, None, "allowed: no policy category matched")
_ALLOWED_EMPTY = PolicyDecision(True, None, "allowed: empty prompt")


# ---------------------------------------------------------------------------------------------
# 1. Normalisation: prompt -> tokens, each with the forms it may stand for

_LEET_I = str.maketrans("0134578@$!|9", "oieastbasilg")  # "k1ll" -> "kill"
_LEET_L = str.maketrans("0134578@$!|9", "oleastbasilg")  # "1ynch" -> "lynch"
_WORD = re.compile(r"[a-z0-9@$!|*]+")
_AGE = re.compile(r"\b(\d{1,2})\s*(?:yo|y/o|yrs? old|years? old)\b")  # "12yo" -> "12 year old"
_RUN = re.compile(r"(.)\1{2,}")  # three or more of one character
_SKIPPED = frozenset({"a", "an", "the", "s", "his", "her", "their", "its", "my", "your", "our"})
_COMPOUND = re.compile(r"[a-z0-9@$!|*]+(?:[-_][a-z0-9@$!|*]+)+")  # "de-capitated"
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class _Token:
    """One word of a prompt: ``text`` as written (lower case), ``forms`` what it may stand for
    once obfuscation is undone (a ``*`` in a form is one masked letter), and for quick lookups
    ``heads``, every beginning of every form."""

    text: str
    forms: frozenset[str]
    heads: frozenset[str]
    masked: bool  # some form has a masked letter: lookups must compare letter by letter

    @classmethod
    def of(cls, word: str, spelt_out: bool = False) -> _Token:
        forms = frozenset(_forms(word, spelt_out))
        heads = frozenset(form[:end] for form in forms for end in range(1, len(form) + 1))
        return cls(word, forms, heads, any("*" in form for form in forms))


@dataclass(frozen=True)
class _Text:
    """A prompt as token sequences to match phrases in: its words, then each hyphenated
    compound joined into one word ("de-capitated" -> "decapitated"), on its own. ``forms`` and
    ``heads`` are the union over all tokens: a pattern word none of whose stems is in them
    cannot match anywhere, which rules most rules out at once."""

    sequences: tuple[tuple[_Token, ...], ...]
    forms: frozenset[str]
    heads: frozenset[str]
    masked: bool

    @classmethod
    def of(cls, prompt: str) -> _Text:
        words = tuple(_Token.of(word, spelt) for word, spelt in _spelt_words(prompt))
        compounds = [
            (_Token.of(re.sub(r"[-_]", "", compound)),)
            for compound in _COMPOUND.findall(_fold(prompt))
        ]
        tokens = [*words, *(compound[0] for compound in compounds)]
        return cls(
            (words, *compounds),
            frozenset().union(*(token.forms for token in tokens)),
            frozenset().union(*(token.heads for token in tokens)),
            any(token.masked for token in tokens),
        )


def _fold(text: str) -> str:
    """Lower case without accents: "Beyoncé" -> "beyonce"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def _words(text: str) -> list[str]:
    """The raw words of ``text`` (folded), with letters spelt out one by one joined again."""
    return [word for word, _ in _spelt_words(text)]


def _spelt_words(text: str) -> list[tuple[str, bool]]:
    """`_words`, each with whether it was spelt out letter by letter ("k i l l", "k.i.l.l")."""
    raw = [
        word for word in _WORD.findall(_AGE.sub(r"\1 year old", _fold(text))) if _has_alnum(word)
    ]
    words: list[tuple[str, bool]] = []
    index = 0
    while index < len(raw):
        end = index
        while end < len(raw) and len(raw[end]) == 1:
            end += 1
        if end - index >= 3:  # three single letters in a row are one word spelt out
            words.append(("".join(raw[index:end]), True))
            index = end
        else:
            words.append((raw[index], False))
            index += 1
    return words


def _forms(word: str, spelt_out: bool = False) -> tuple[str, ...]:
    """What one raw word may stand for: itself without symbols, leetspeak read both ways
    (``1`` as i and as l), stretched letters shortened, and a spelt-out word without an article
    it swallowed ("kill" from "a k i l l")."""
    core = word.strip("!|*")
    forms = {re.sub(r"[^a-z0-9]", "", core)}
    has_letter = re.search(r"[a-z]", core) is not None
    if has_letter and re.search(r"[0-9@$!|*]", core):
        for table in (_LEET_I, _LEET_L):
            forms.add(re.sub(r"[^a-z*]", "", core.translate(table)))
    for form in list(forms):
        if _RUN.search(form):  # "kiiill" -> "kiill" and "kill"
            forms.update({_RUN.sub(r"\1\1", form), _RUN.sub(r"\1", form)})
    if spelt_out:
        for form in list(forms):
            if len(form) > 3 and form[0] in "ai":
                forms.add(form[1:])
            if len(form) > 3 and form[-1] in "ai":
                forms.add(form[:-1])
    masked_ok = {form for form in forms if form.count("*") * 2 <= len(form)}
    return tuple(sorted(form for form in masked_ok if form))


def _has_alnum(word: str) -> bool:
    return re.search(r"[a-z0-9]", word) is not None


# ---------------------------------------------------------------------------------------------
# 2. Rules: phrases, co-occurrences and names


@dataclass(frozen=True)
class _Stem:
    """One spelling a pattern word accepts: the whole word, or any word beginning with it."""

    text: str
    prefix: bool

    def matches(self, form: str) -> bool:
        """Whether one form matches, a ``*`` in the form standing for any letter."""
        if len(form) < len(self.text) or (not self.prefix and len(form) != len(self.text)):
            return False
        head = form[: len(self.text)]
        return head == self.text or all(a in (b, "*") for a, b in zip(head, self.text, strict=True))

    def in_token(self, token: _Token | _Text) -> bool:
        """Whether any form of a token (or of a whole prompt) matches."""
        if token.masked:
            return any(self.matches(form) for form in token.forms)
        return self.text in (token.heads if self.prefix else token.forms)


_Word = tuple[_Stem, ...]  # a pattern word: any of its stems


@dataclass(frozen=True)
class _Phrase:
    """Pattern words that must follow one another (articles and possessives may sit between
    them). ``joined`` is the phrase without spaces, matched against one written word
    ("heilhitler"), for phrases of plain words only."""

    words: tuple[_Word, ...]
    joined: _Stem | None

    def find(self, text: _Text) -> str | None:
        """The matching words of the prompt as written, or None."""
        if self.joined is not None and self.joined.in_token(text):
            tokens = (token for sequence in text.sequences for token in sequence)
            return next(token.text for token in tokens if self.joined.in_token(token))
        if not all(any(stem.in_token(text) for stem in word) for word in self.words):
            return None  # some word is nowhere in the prompt
        for tokens in text.sequences:
            for start in range(len(tokens)):
                end = self._match_at(tokens, start)
                if end is not None:
                    return " ".join(token.text for token in tokens[start:end])
        return None

    def _match_at(self, tokens: Sequence[_Token], start: int) -> int | None:
        index = start
        for number, word in enumerate(self.words):
            while True:
                if index >= len(tokens):
                    return None
                token = tokens[index]
                index += 1
                if any(stem.in_token(token) for stem in word):
                    break
                if number == 0 or token.text not in _SKIPPED:
                    return None
        return index


@dataclass(frozen=True)
class _Rule:
    """Refuses when every slot has a phrase somewhere in the prompt. ``figure`` (for a rule of
    the names list) is the name the reason gives instead of the matched words."""

    category: str
    slots: tuple[tuple[_Phrase, ...], ...]
    figure: str | None = None

    def find(self, text: _Text) -> list[str] | None:
        """The matched words of each slot, or None when a slot has no match."""
        found = []
        for slot in self.slots:
            match = next((hit for phrase in slot if (hit := phrase.find(text)) is not None), None)
            if match is None:
                return None
            found.append(match)
        return found

    def reason(self, found: list[str]) -> str:
        label = CATEGORY_LABELS[self.category]
        if self.figure is not None:
            return f"refused: {label} (names the real public figure {self.figure})"
        quoted = " with ".join(repr(words) for words in found)
        return f"refused: {label} (the prompt contains {quoted}){_always(self.category)}"


def _compile_phrase(text: str, groups: Mapping[str, tuple[_Stem, ...]]) -> _Phrase:
    """A phrase of the rules' syntax, its words split the way prompts are."""
    words: list[_Word] = []
    for raw in _fold(text).split():
        if raw.startswith("{") and raw.endswith("}"):
            if raw[1:-1] not in groups:
                raise PolicyError(f"phrase {text!r} uses the unknown group {raw}")
            words.append(groups[raw[1:-1]])
            continue
        parts = [re.sub(r"[^a-z0-9]", "", part) for part in _words(raw)]  # "o'neal": o, neal
        words += [(_Stem(part, False),) for part in parts[:-1]]
        if parts:
            words.append((_Stem(parts[-1], raw.endswith("*")),))
    if not words:
        raise PolicyError(f"phrase {text!r} has no words")
    plain = all(len(word) == 1 for word in words) and "{" not in text
    joined = None
    if plain and len(words) > 1:
        joined = _Stem("".join(word[0].text for word in words), words[-1][0].prefix)
    return _Phrase(tuple(words), joined)


@dataclass(frozen=True)
class PublicFigure:
    """A real public figure of the names list: ``name`` as usually written, ``kind``
    (politician, royal, celebrity, athlete, business, public), ``forms`` every form matched."""

    name: str
    kind: str
    forms: tuple[str, ...]


def load_public_figures() -> tuple[PublicFigure, ...]:
    """The names list shipped as package data (``data/public_figures.json``)."""
    data = _load_json("public_figures.json")
    return tuple(
        PublicFigure(entry["name"], entry["kind"], (entry["name"], *entry.get("also", ())))
        for entry in data["figures"]
    )


def _load_rules(extra_phrases: Iterable[tuple[str, str]]) -> tuple[_Rule, ...]:
    """Every rule, in the order decisions prefer: by category, and within real_people the
    names first (so "Al Gore" is a real person before "gore" is violence); extra phrases come
    last in their category."""
    groups, shipped = _shipped_rules()
    rules = {category: list(shipped[category]) for category in CATEGORIES}
    for category, text in extra_phrases:
        rules[category].append(_Rule(category, ((_compile_phrase(text, groups),),)))
    return tuple(rule for category in CATEGORIES for rule in rules[category])


@functools.cache
def _shipped_rules() -> tuple[dict[str, tuple[_Stem, ...]], dict[str, tuple[_Rule, ...]]]:
    """The rules of the package data, compiled once per process: the word groups, and each
    category's rules in order."""
    data = _load_json("rules.json")
    groups = {
        name: tuple(stem for member in members for stem in _group_stems(member))
        for name, members in data["groups"].items()
    }
    rules: dict[str, list[_Rule]] = {category: [] for category in CATEGORIES}
    rules["real_people"] = [
        _Rule(
            "real_people",
            (tuple(_compile_phrase(form, groups) for form in figure.forms),),
            figure.name,
        )
        for figure in load_public_figures()
    ]
    for category, spec in data["categories"].items():
        for text in spec.get("phrases", ()):
            rules[category].append(_Rule(category, ((_compile_phrase(text, groups),),)))
        for slots in spec.get("together", ()):
            compiled = tuple(
                tuple(_compile_phrase(text, groups) for text in slot) for slot in slots
            )
            rules[category].append(_Rule(category, compiled))
    return groups, {category: tuple(rules[category]) for category in CATEGORIES}


def _group_stems(member: str) -> tuple[_Stem, ...]:
    """A group member is one word, or one word ending in ``*``."""
    text = _fold(member)
    if not re.fullmatch(r"[a-z0-9]+\*?", text):
        raise PolicyError(f"group member {member!r} must be one word, optionally ending in *")
    return (_Stem(text.rstrip("*"), text.endswith("*")),)


# ---------------------------------------------------------------------------------------------
# 3. Meaning: similarity to example sentences


@dataclass(frozen=True)
class _Meanings:
    """Example sentences, embedded: ``exemplars`` (E, 384) unit rows, ``owner`` (E,) the index
    of each row's category in `CATEGORIES` or -1 for a benign example."""

    exemplars: Tensor  # (E, 384)
    owner: Tensor  # (E,) long
    thresholds: Tensor  # (C,)
    margin: float

    def scores(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """Per row of ``pooled`` (N, 384): the best similarity to each category's examples
        (N, C) and to the benign examples (N,)."""
        similarity = pooled @ self.exemplars.T  # (N, E)
        per_category = torch.stack(
            [similarity[:, self.owner == index].amax(dim=1) for index in range(len(CATEGORIES))],
            dim=1,
        )  # (N, C)
        benign = similarity[:, self.owner == -1].amax(dim=1)  # (N,)
        return per_category, benign


_shared_meanings: weakref.WeakKeyDictionary[SentenceEncoder, _Meanings] = (
    weakref.WeakKeyDictionary()
)
_shared_meanings_lock = threading.Lock()


def _meanings_for(encoder: SentenceEncoder) -> _Meanings:
    """The examples embedded by ``encoder``, once per encoder (policies share them)."""
    with _shared_meanings_lock:  # two threads checking at once embed the examples once
        if encoder not in _shared_meanings:
            _shared_meanings[encoder] = _embed_meanings(encoder)
        return _shared_meanings[encoder]


def example_sentences() -> list[tuple[str, int]]:
    """The policy's example sentences, each with the index of its category in `CATEGORIES`
    (-1 for the benign ones); the policy embeds them with the text encoder when it first checks
    a prompt's meaning."""
    return _examples(_load_json("exemplars.json"))


def _examples(data: dict[str, Any]) -> list[tuple[str, int]]:
    """`example_sentences` from the loaded ``exemplars.json``."""
    examples = [
        (sentence, index)
        for index, category in enumerate(CATEGORIES)
        for sentence in data["categories"][category]
    ]
    return examples + [(sentence, -1) for sentence in data["benign"]]


def _embed_meanings(encoder: SentenceEncoder) -> _Meanings:
    data = _load_json("exemplars.json")  # read once: the examples, thresholds and margin
    examples = _examples(data)
    return _Meanings(
        exemplars=_encode(encoder, [sentence for sentence, _ in examples]),  # (E, 384)
        owner=torch.tensor([owner for _, owner in examples]),
        thresholds=torch.tensor([float(data["thresholds"][c]) for c in CATEGORIES]),
        margin=float(data["margin"]),
    )


def _encode(encoder: SentenceEncoder, texts: Sequence[str]) -> Tensor:
    """Unit sentence vectors (N, 384), float32 on the CPU, in batches of similar lengths (a
    batch is padded to its longest text)."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    chunks = [
        encoder.encode([texts[i] for i in order[start : start + _ENCODE_BATCH]]).pooled
        for start in range(0, len(texts), _ENCODE_BATCH)
    ]
    pooled = torch.cat(chunks).float().cpu()  # (N, 384) in length order
    return pooled[torch.argsort(torch.tensor(order))]  # (N, 384) in the texts' order


def _sentences(prompt: str) -> list[str]:
    """The prompt, then each of its sentences when it has more than one: a harmful sentence
    inside a long benign prompt is judged on its own too."""
    parts = [part.strip() for part in _SENTENCE_END.split(prompt.strip()) if part.strip()]
    return [prompt.strip(), *parts] if len(parts) > 1 else [prompt.strip()]


# ---------------------------------------------------------------------------------------------
# The policy


class PromptPolicy:
    """Checks prompts against the enabled categories (see the module docstring).

    ``encoder``: a sentence encoder (`TextEncoder`); None loads the process's shared MiniLM on
    first use (`load_text_encoder`), unless ``config.use_encoder`` is False, in which case
    only the rules apply. Building a policy is cheap: the rules load at once, the encoder and
    the examples' embeddings on the first check that needs them (or on `prepare`).
    """

    def __init__(
        self, config: PolicyConfig | None = None, encoder: SentenceEncoder | None = None
    ) -> None:
        self.config = PolicyConfig() if config is None else config
        if not isinstance(self.config, PolicyConfig):
            raise PolicyError(f"config must be a PolicyConfig, got {type(self.config).__name__}")
        self._encoder = encoder
        self._rules = tuple(
            rule
            for rule in _load_rules(self.config.extra_phrases)
            if rule.category in self.config.enabled
        )
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Load the encoder and embed the examples now rather than on the first check."""
        if self.config.use_encoder:
            self._embedded()

    def check(self, prompt: str) -> PolicyDecision:
        """The decision on one prompt."""
        if not isinstance(prompt, str):
            raise PolicyError(f"a prompt must be a string, got {type(prompt).__name__}")
        return self.check_many([prompt])[0]

    def check_many(self, prompts: Sequence[str]) -> list[PolicyDecision]:
        """The decision on each prompt, in order; the encoder sees all of them (and their
        sentences) in as few calls as possible."""
        _check_prompts(prompts)
        # 1. empty prompts and rule hits are decided without the encoder
        decisions: list[PolicyDecision | None] = [self._by_rules(prompt) for prompt in prompts]
        undecided = [index for index, decision in enumerate(decisions) if decision is None]
        # 2. the rest by meaning, one batch for all their sentences
        if undecided and self.config.use_encoder:
            for index, decision in zip(
                undecided, self._by_meaning([prompts[i] for i in undecided]), strict=True
            ):
                decisions[index] = decision
        return [_ALLOWED if decision is None else decision for decision in decisions]

    def enforce(self, *prompts: str) -> None:
        """Raise `PolicyRefusal` for the first refused prompt; return quietly when all pass.
        Pass prompts only, not negative prompts (see the module docstring)."""
        for decision in self.check_many(prompts):
            decision.raise_if_refused()

    # ---- helpers

    def _by_rules(self, prompt: str) -> PolicyDecision | None:
        if not prompt.strip():
            return _ALLOWED_EMPTY
        text = _Text.of(prompt)
        for rule in self._rules:
            found = rule.find(text)
            if found is not None:
                return PolicyDecision(False, rule.category, rule.reason(found))
        return None

    def _by_meaning(self, prompts: Sequence[str]) -> list[PolicyDecision]:
        meanings = self._embedded()
        sentences = [_sentences(prompt) for prompt in prompts]
        flat = [sentence for group in sentences for sentence in group]
        per_category, benign = meanings.scores(_encode(self._encoder_or_shared(), flat))
        enabled = torch.tensor([category in self.config.enabled for category in CATEGORIES])
        decisions = []
        start = 0
        for group in sentences:
            rows = slice(start, start + len(group))
            start += len(group)
            decisions.append(self._decide(meanings, per_category[rows], benign[rows], enabled))
        return decisions

    @staticmethod
    def _decide(
        meanings: _Meanings, per_category: Tensor, benign: Tensor, enabled: Tensor
    ) -> PolicyDecision:
        """Decide one prompt from its sentences' scores: ``per_category`` (S, C), ``benign``
        (S,). A category refuses when some sentence reaches its threshold and beats that
        sentence's benign similarity by the margin."""
        over = per_category - meanings.thresholds  # (S, C)
        refuses = (over >= 0) & (per_category - benign[:, None] >= meanings.margin) & enabled
        if not bool(refuses.any()):
            return _ALLOWED
        excess = torch.where(refuses, over, torch.full_like(over, -torch.inf)).amax(dim=0)  # (C,)
        index = int(excess.argmax())
        category = CATEGORIES[index]
        score = float(per_category[:, index][refuses[:, index]].max())
        reason = (
            f"refused: {CATEGORY_LABELS[category]} (the prompt reads like this category's "
            f"examples: similarity {score:.2f}, threshold {float(meanings.thresholds[index]):.2f})"
            f"{_always(category)}"
        )
        return PolicyDecision(False, category, reason)

    def _encoder_or_shared(self) -> SentenceEncoder:
        with self._lock:
            if self._encoder is None:
                from kinetoscope.models.text import load_text_encoder

                self._encoder = load_text_encoder()
            return self._encoder

    def _embedded(self) -> _Meanings:
        return _meanings_for(self._encoder_or_shared())


_default: PromptPolicy | None = None
_default_lock = threading.Lock()


def default_policy() -> PromptPolicy:
    """The process's shared policy, configured from the environment (`PolicyConfig.from_env`)
    on first use and kept; it uses the shared MiniLM encoder."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PromptPolicy(PolicyConfig.from_env())
        return _default


# ---------------------------------------------------------------------------------------------
# Helpers


def _load_json(name: str) -> dict[str, Any]:
    text = resources.files("kinetoscope.safety").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


def _always(category: str) -> str:
    return "; this category is always refused" if category == ALWAYS_REFUSED else ""


def _check_categories(names: Iterable[str], what: str) -> None:
    unknown = sorted(str(name) for name in names if name not in CATEGORIES)
    if unknown:
        raise PolicyError(
            f"unknown policy categories in {what}: {', '.join(unknown)} "
            f"(known: {', '.join(CATEGORIES)})"
        )


def _string_list(value: object, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise PolicyError(f"{what} must be a list of strings, got {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise PolicyError(f"{what} must be a list of strings, got the item {item!r}")
    return items


def _check_prompts(prompts: Sequence[str]) -> None:
    if isinstance(prompts, str):
        raise PolicyError("prompts must be a sequence of strings, not one string: use [prompt]")
    if not isinstance(prompts, Sequence):
        raise PolicyError(f"prompts must be a sequence of strings, got {type(prompts).__name__}")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise PolicyError(f"prompt {index} is a {type(prompt).__name__}, not a string")
