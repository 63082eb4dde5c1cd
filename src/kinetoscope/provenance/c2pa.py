"""C2PA manifests: say, in a signed and tamper-evident way, that a video was generated, by
which model, from what request and which inputs.

A manifest written by `sign_video` holds:

- ``c2pa.actions``: one ``c2pa.created`` action, its ``digitalSourceType`` IPTC's
  ``trainedAlgorithmicMedia``, its ``when`` the record's creation time, its
  ``softwareAgent`` Kinetoscope and its version.
- ``claim_generator_info``: name ``Kinetoscope``, version ``kinetoscope.__version__``, and the
  model as ``org.kinetoscope.model`` (its name) and ``org.kinetoscope.model_sha256``
  (`weights_sha256` of its folder).
- ``org.kinetoscope.generation``: ``{"parameters": {...}, "prompt_redacted": bool}``, the
  generation request. With ``redact_prompt`` every value whose key ends in ``prompt`` or
  ``prompts`` (at any depth, e.g. a storyboard's shots) becomes ``"[redacted]"``.
- One ingredient per input (the image or videos of animate, extend, remix, connect, blend,
  storyboard): title, media type, relationship (``parentOf``, ``componentOf`` or
  ``inputTo``), and in its metadata ``org.kinetoscope.sha256`` (the file's SHA-256) and
  ``org.kinetoscope.rights_attested`` (whether the user said they hold the rights to it).
- ``org.kinetoscope.attribution``: ``{"creators": [...]}``, the credited creators (may be
  empty).

Where the manifest goes, by extension:

- ``.mp4`` (and any format the C2PA library embeds into, such as ``.gif``): inside the file,
  bound to it by C2PA's own hash of the media data (BMFF boxes for mp4).
- ``.webm`` (which the C2PA library cannot embed into): a sidecar manifest store named
  ``<file>.c2pa`` (``clip.webm.c2pa``), bound by a ``c2pa.hash.data`` hard binding, the SHA-256
  of every byte of the file.

Either way the signed file or the sidecar appears in one step (temporary file beside it, then
`os.replace`). `read_manifest` validates with the C2PA library, offline: signature, bindings,
and trust, where trusted means the signing chain ends at one of the given trust anchors
(default: `default_trust_anchors`).
"""

import datetime
import hashlib
import io
import json
import mimetypes
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import c2pa
from cryptography import x509

from kinetoscope import __version__
from kinetoscope.provenance.identity import (
    ProvenanceError,
    SigningIdentity,
    default_trust_anchors,
    load_identity,
)

__all__ = [
    "ATTRIBUTION_LABEL",
    "DIGITAL_SOURCE_TYPE",
    "GENERATION_LABEL",
    "REDACTED",
    "RELATIONSHIPS",
    "Ingredient",
    "ManifestReport",
    "ProvenanceError",
    "ProvenanceRecord",
    "file_sha256",
    "read_manifest",
    "sidecar_path",
    "sign_video",
    "weights_sha256",
]

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.kinetoscope.generation"
ATTRIBUTION_LABEL = "org.kinetoscope.attribution"
MODEL_KEY = "org.kinetoscope.model"
MODEL_SHA256_KEY = "org.kinetoscope.model_sha256"
SHA256_KEY = "org.kinetoscope.sha256"
RIGHTS_KEY = "org.kinetoscope.rights_attested"
GENERATOR = "Kinetoscope"
REDACTED = "[redacted]"
RELATIONSHIPS = ("parentOf", "componentOf", "inputTo")
SIDECAR_SUFFIX = ".c2pa"
_WEIGHT_SUFFIXES = (".safetensors", ".json")  # the tensors and the configs that shape them
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_UNTRUSTED = "signingCredential.untrusted"
# no network while signing or reading: no remote manifests, no OCSP; thumbnails are not worth
# their bytes in a manifest beside a playable video
_OFFLINE = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Ingredient:
    """An input of a generation: an image or video it started from, extended or blended.

    ``sha256`` is the lower-case hex SHA-256 of the file; ``relationship`` is C2PA's
    ``parentOf`` (the output is an edit of it), ``componentOf`` (a part of the output) or
    ``inputTo`` (it steered the output); ``rights_attested`` records whether the user said
    they hold the rights to use it.
    """

    title: str
    sha256: str
    relationship: str = "inputTo"
    media_type: str = "application/octet-stream"
    rights_attested: bool = False

    def __post_init__(self) -> None:
        if self.relationship not in RELATIONSHIPS:
            choices = ", ".join(RELATIONSHIPS)
            raise ProvenanceError(
                f"ingredient {self.title!r}: relationship must be one of {choices}, "
                f"got {self.relationship!r}"
            )
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise ProvenanceError(
                f"ingredient {self.title!r}: sha256 must be 64 lower-case hex digits, "
                f"got {self.sha256!r}"
            )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        relationship: str = "inputTo",
        rights_attested: bool = False,
    ) -> "Ingredient":
        """The ingredient for a file: its name, hash and media type (from its extension)."""
        path = Path(path)
        return cls(
            title=path.name,
            sha256=file_sha256(path),
            relationship=relationship,
            media_type=_media_type(path),
            rights_attested=rights_attested,
        )


@dataclass(frozen=True)
class ProvenanceRecord:
    """What a manifest says about one generated video.

    ``model_sha256`` is `weights_sha256` of the model folder; ``parameters`` is the
    generation request as JSON-compatible values; ``creators`` are the people credited;
    ``created`` is an ISO 8601 time, now (UTC) when not given.
    """

    model_name: str
    model_sha256: str
    parameters: dict[str, Any] = field(default_factory=dict)
    ingredients: tuple[Ingredient, ...] = ()
    creators: tuple[str, ...] = ()
    redact_prompt: bool = False
    created: str | None = None

    def __post_init__(self) -> None:
        if not _SHA256_HEX.fullmatch(self.model_sha256):
            raise ProvenanceError(
                f"model_sha256 must be 64 lower-case hex digits, got {self.model_sha256!r}"
            )
        try:
            json.dumps(self.parameters, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ProvenanceError(f"parameters must be plain JSON values: {exc}") from exc
        if self.created is None:
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            object.__setattr__(self, "created", now)
        else:
            try:
                datetime.datetime.fromisoformat(self.created)
            except (TypeError, ValueError):
                raise ProvenanceError(
                    f"created must be an ISO 8601 time, got {self.created!r}"
                ) from None
        object.__setattr__(self, "ingredients", tuple(self.ingredients))
        object.__setattr__(self, "creators", tuple(self.creators))


@dataclass(frozen=True)
class ManifestReport:
    """What reading a file's manifest found.

    ``state`` is ``"valid"`` (signature and binding check out), ``"invalid"`` (they do not,
    or the manifest is damaged; ``reason`` says how) or ``"missing"``. ``trusted`` is true
    when the state is valid and the signing chain ends at a trust anchor. ``summary`` holds
    generator, version, model, model_sha256, created, digital_source_type, parameters,
    prompt_redacted, ingredients, attribution and signer (empty when missing).
    """

    state: str
    reason: str | None = None
    trusted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "manifest": self.state,
            "trusted": self.trusted,
            "reason": self.reason,
            "summary": self.summary,
        }


# ---------------------------------------------------------------------------------------------
# Hashes


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The lower-case hex SHA-256 of a file's bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ProvenanceError(f"{path}: cannot read the file to hash it ({exc.strerror})") from exc
    return digest.hexdigest()


def weights_sha256(folder: str | os.PathLike[str]) -> str:
    """One SHA-256 for a model folder: over ``<relative path>\\0<file sha256>\\n`` for every
    ``.safetensors`` and ``.json`` file below it, in sorted order of the relative paths
    (``/``-separated), so it is the same on every machine and for every copy."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProvenanceError(f"{folder}: no such model folder")
    files = sorted(
        (path.relative_to(folder).as_posix(), path)
        for path in folder.rglob("*")
        if path.suffix in _WEIGHT_SUFFIXES and path.is_file()
    )
    if not files:
        raise ProvenanceError(f"{folder}: holds no .safetensors or .json files")
    digest = hashlib.sha256()
    for relative, path in files:
        digest.update(f"{relative}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Signing


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the manifest store of a file C2PA cannot embed into goes: ``<file>.c2pa``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def sign_video(
    path: str | os.PathLike[str],
    record: ProvenanceRecord,
    identity: SigningIdentity | None = None,
    title: str | None = None,
) -> Path:
    """Sign ``path`` with a manifest describing ``record``, as ``identity`` (default:
    `load_identity`). Embeds the manifest where the format allows (mp4, gif), else writes
    the sidecar ``<file>.c2pa``. Returns the path that now holds the manifest. ``title``:
    the asset's name in the manifest (default: the file's; a file signed under a temporary
    name before it is moved into place passes its final name)."""
    # 1. check the inputs and the identity before touching any file
    path = _existing_file(path)
    media_type = _media_type(path)
    identity = identity if identity is not None else load_identity()
    definition = _manifest_definition(record, title or path.name)
    # 2. sign into a temporary file beside the target, then move it into place
    if _embeds(media_type):
        target = path
        with path.open("rb") as source:
            _write_atomically(
                target, lambda out: _sign(definition, identity, media_type, source, out)
            )
    else:
        target = sidecar_path(path)
        definition["assertions"].append(_data_hash_binding(path))
        empty = io.BytesIO()  # the asset is bound by the hash above, not copied
        _write_atomically(
            target, lambda out: _sign(definition, identity, "application/c2pa", empty, out)
        )
    return target


def _manifest_definition(record: ProvenanceRecord, title: str) -> dict[str, Any]:
    """The C2PA manifest definition (JSON) of a record."""
    parameters = _redacted(record.parameters) if record.redact_prompt else record.parameters
    created_action = {
        "action": "c2pa.created",
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "softwareAgent": {"name": GENERATOR, "version": __version__},
        "when": record.created,
    }
    return {
        "claim_generator_info": [
            {
                "name": GENERATOR,
                "version": __version__,
                MODEL_KEY: record.model_name,
                MODEL_SHA256_KEY: record.model_sha256,
            }
        ],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [created_action]}},
            {
                "label": GENERATION_LABEL,
                "data": {"parameters": parameters, "prompt_redacted": record.redact_prompt},
            },
            {"label": ATTRIBUTION_LABEL, "data": {"creators": list(record.creators)}},
        ],
        "ingredients": [_ingredient_definition(item) for item in record.ingredients],
    }


def _ingredient_definition(ingredient: Ingredient) -> dict[str, Any]:
    """An ingredient as C2PA JSON, its hash and rights attestation in its metadata."""
    return {
        "title": ingredient.title,
        "format": ingredient.media_type,
        "relationship": ingredient.relationship,
        "metadata": {SHA256_KEY: ingredient.sha256, RIGHTS_KEY: ingredient.rights_attested},
    }


def _redacted(value: Any) -> Any:
    """A copy of JSON ``value`` with every ``*prompt`` or ``*prompts`` entry redacted."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key.endswith(("prompt", "prompts")) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _data_hash_binding(path: Path) -> dict[str, Any]:
    """A ``c2pa.hash.data`` hard binding over every byte of ``path`` (for a sidecar)."""
    digest = bytes.fromhex(file_sha256(path))
    return {
        "label": "c2pa.hash.data",
        # a list of ints is how the C2PA library takes a byte string in JSON
        "data": {"name": "jumbf manifest", "alg": "sha256", "hash": list(digest), "pad": []},
    }


def _sign(
    definition: dict[str, Any],
    identity: SigningIdentity,
    media_type: str,
    source: BinaryIO,
    out: BinaryIO,
) -> None:
    """Sign ``source`` (of ``media_type``) into ``out`` with the C2PA library."""
    info = c2pa.C2paSignerInfo(
        identity.algorithm.encode(), identity.certificate_chain_pem, identity.private_key_pem, None
    )
    try:
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Context.from_dict(_OFFLINE) as context,
            c2pa.Builder(definition, context=context) as builder,
        ):
            builder.sign(signer, media_type, source, out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {exc}") from exc


def _write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write`` into a hidden temporary file beside ``target``, then replace ``target``."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        with temporary.open("w+b") as out:
            write(out)
        os.replace(temporary, target)
    except OSError as exc:
        raise ProvenanceError(f"{target}: could not write the file ({exc.strerror})") from exc
    finally:
        temporary.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Reading


def read_manifest(
    path: str | os.PathLike[str], trust_anchors: list[Path] | None = None
) -> ManifestReport:
    """Read and validate the manifest of ``path`` (embedded, or the ``<file>.c2pa`` sidecar),
    trusting chains that end at ``trust_anchors`` (PEM files; default:
    `default_trust_anchors`). Raises `ProvenanceError` when ``path`` or an anchor cannot be
    read; a damaged manifest is an ``invalid`` report, not an error."""
    path = _existing_file(path)
    media_type = _media_type(path)
    anchors = default_trust_anchors() if trust_anchors is None else list(trust_anchors)
    try:
        with _reading_context(anchors) as context:
            store = _read_store(path, media_type, context)
    except c2pa.C2paError as exc:
        return ManifestReport(state="invalid", reason=f"unreadable manifest: {exc}")
    if store is None:
        return ManifestReport(state="missing", reason=_missing_reason(path, media_type))
    return _report(store)


def _read_store(path: Path, media_type: str, context: c2pa.Context) -> dict[str, Any] | None:
    """The manifest store as JSON, validated, or None when there is none."""
    with path.open("rb") as asset:
        if _embeds(media_type):
            reader = c2pa.Reader.try_create(media_type, asset, None, context)
        else:
            sidecar = sidecar_path(path)
            if not sidecar.is_file():
                return None
            reader = c2pa.Reader(media_type, asset, sidecar.read_bytes(), context)
        if reader is None:
            return None
        with reader:
            return json.loads(reader.json())


def _missing_reason(path: Path, media_type: str) -> str:
    """Why no manifest was found, in words."""
    if _embeds(media_type):
        return f"{path.name} carries no C2PA manifest"
    return f"{path.name} has no C2PA sidecar ({sidecar_path(path).name})"


def _reading_context(anchors: list[Path]) -> c2pa.Context:
    """An offline C2PA context that trusts chains ending at one of ``anchors`` (PEM files)."""
    if not anchors:
        return c2pa.Context.from_dict(_OFFLINE)  # an empty anchor list is a parse error
    texts = []
    for anchor in anchors:
        try:
            text = Path(anchor).read_bytes()
            x509.load_pem_x509_certificates(text)  # the C2PA library would say less, later
        except OSError as exc:
            raise ProvenanceError(f"{anchor}: cannot read the trust anchor ({exc})") from exc
        except ValueError as exc:
            raise ProvenanceError(f"{anchor}: not a PEM certificate ({exc})") from exc
        texts.append(text.decode("utf-8", errors="replace"))
    return c2pa.Context.from_dict({**_OFFLINE, "trust": {"user_anchors": "\n".join(texts)}})


def _report(store: dict[str, Any]) -> ManifestReport:
    """Judge a validated manifest store: state, trust, the reason, and what it says."""
    failures = store.get("validation_results", {}).get("activeManifest", {}).get("failure", [])
    problems = [item for item in failures if item.get("code") != _UNTRUSTED]
    state = store.get("validation_state")
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    summary = _summary(manifest)
    if problems or state not in ("Valid", "Trusted"):
        reasons = [f"{item.get('code')}: {item.get('explanation')}" for item in problems]
        reason = "; ".join(reasons) or f"the C2PA library judged the manifest {state}"
        return ManifestReport(state="invalid", reason=reason, summary=summary)
    if state == "Trusted":
        return ManifestReport(state="valid", trusted=True, summary=summary)
    signer = summary["signer"] or "an unnamed signer"
    reason = f"signed by {signer}, whose certificate does not chain to a trusted root"
    return ManifestReport(state="valid", reason=reason, summary=summary)


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a manifest says, in Kinetoscope's terms (None or empty where it says nothing)."""
    generators = manifest.get("claim_generator_info") or [{}]
    generator = generators[0]
    assertions = {
        item.get("label"): item.get("data", {}) for item in manifest.get("assertions", [])
    }
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get(
        "actions", []
    )
    created = next((item for item in actions if item.get("action") == "c2pa.created"), {})
    generation = assertions.get(GENERATION_LABEL, {})
    signature = manifest.get("signature_info", {})
    return {
        "generator": generator.get("name"),
        "version": generator.get("version"),
        "model": generator.get(MODEL_KEY),
        "model_sha256": generator.get(MODEL_SHA256_KEY),
        "created": created.get("when"),
        "digital_source_type": created.get("digitalSourceType"),
        "parameters": generation.get("parameters", {}),
        "prompt_redacted": generation.get("prompt_redacted", False),
        "ingredients": [_ingredient_summary(item) for item in manifest.get("ingredients", [])],
        "attribution": assertions.get(ATTRIBUTION_LABEL, {}).get("creators", []),
        "signer": signature.get("common_name"),
    }


def _ingredient_summary(ingredient: dict[str, Any]) -> dict[str, Any]:
    """One ingredient of a read manifest."""
    metadata = ingredient.get("metadata", {})
    return {
        "title": ingredient.get("title"),
        "media_type": ingredient.get("format"),
        "relationship": ingredient.get("relationship"),
        "sha256": metadata.get(SHA256_KEY),
        "rights_attested": metadata.get(RIGHTS_KEY, False),
    }


# ---------------------------------------------------------------------------------------------
# Helpers


def _existing_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, after checking it is a readable, non-empty regular file."""
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ProvenanceError(f"{path}: file is empty (0 bytes)")
    return path


def _media_type(path: Path) -> str:
    """The MIME type that the extension of ``path`` names."""
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed or "application/octet-stream"


def _embeds(media_type: str) -> bool:
    """Whether the C2PA library can embed a manifest into files of ``media_type``."""
    return (
        media_type != "application/c2pa" and media_type in c2pa.Builder.get_supported_mime_types()
    )
