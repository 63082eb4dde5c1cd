"""The identity that signs C2PA manifests: a certificate chain, its private key and the root
that anchors it.

Two sources, checked in this order:

- Configured. ``KINETOSCOPE_C2PA_CERT`` names a PEM file holding the signing certificate first,
  then any intermediates; ``KINETOSCOPE_C2PA_KEY`` names the PEM private key of that
  certificate. Both must be set, or neither. The algorithm follows from the key: EC P-256,
  P-384 and P-521 sign with ES256, ES384 and ES512, RSA with PS256 and Ed25519 with Ed25519.
- Local. Otherwise a local root certificate authority and a signing certificate issued by it
  are made on first use and kept in ``<config>/c2pa/``, where ``<config>`` is
  ``$KINETOSCOPE_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/kinetoscope``, else
  ``~/.config/kinetoscope``. The folder is 0700 and the key files 0600. The folder is built
  under a temporary name and renamed into place in one step, so two processes starting at
  once end up with one identity, and an existing identity is never replaced.

Trust anchors, the roots a reader trusts, are the local root when it exists plus every PEM
file listed in ``KINETOSCOPE_C2PA_TRUST`` (several separated by ``os.pathsep``). No network is
used: there is no timestamp authority and no revocation check.

The signing certificate has what C2PA validators ask of one: version 3, not a CA, the
digitalSignature key usage, the emailProtection extended key usage, and subject and authority
key identifiers. Keys are EC P-256 in PKCS#8 PEM.
"""

import datetime
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kinetoscope.errors import KinetoscopeError

__all__ = [
    "CERT_ENV",
    "CONFIG_DIR_ENV",
    "KEY_ENV",
    "TRUST_ENV",
    "ProvenanceError",
    "SigningIdentity",
    "config_dir",
    "default_trust_anchors",
    "load_identity",
]

CONFIG_DIR_ENV = "KINETOSCOPE_CONFIG_DIR"
CERT_ENV = "KINETOSCOPE_C2PA_CERT"
KEY_ENV = "KINETOSCOPE_C2PA_KEY"
TRUST_ENV = "KINETOSCOPE_C2PA_TRUST"

IDENTITY_FOLDER = "c2pa"
ROOT_CERT_FILE = "root-ca.pem"
ROOT_KEY_FILE = "root-ca.key"  # kept to issue a new signing certificate when this one expires
CHAIN_FILE = "signer-chain.pem"
KEY_FILE = "signer.key"
_ORGANIZATION = "Kinetoscope"
_ROOT_YEARS = 20
_SIGNER_YEARS = 10
_EC_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


class ProvenanceError(KinetoscopeError):
    """Signing or reading provenance failed; the message names the file and the problem."""


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate chain and its private key, ready for a C2PA signer.

    ``certificate_chain_pem`` holds the signing certificate first, then any intermediates;
    ``private_key_pem`` is the signing certificate's key; ``algorithm`` is the C2PA name of
    the signature algorithm (``es256``, ``es384``, ``es512``, ``ps256`` or ``ed25519``);
    ``root_ca_path`` is the PEM file of the root that anchors the chain, when known.
    """

    certificate_chain_pem: bytes
    private_key_pem: bytes
    algorithm: str = "es256"
    root_ca_path: Path | None = None


def config_dir() -> Path:
    """The user's Kinetoscope configuration folder (it may not exist yet)."""
    configured = os.environ.get(CONFIG_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "kinetoscope"


def load_identity(config_dir: Path | None = None) -> SigningIdentity:
    """The signing identity: the configured one when ``KINETOSCOPE_C2PA_CERT`` and
    ``KINETOSCOPE_C2PA_KEY`` are set, else the local one in ``config_dir`` (default: the
    user's configuration folder), made on first use. Raises `ProvenanceError` when the
    configured files are missing or do not match, or the local folder cannot be made."""
    cert, key = os.environ.get(CERT_ENV), os.environ.get(KEY_ENV)
    if cert or key:
        if not (cert and key):
            missing = KEY_ENV if cert else CERT_ENV
            raise ProvenanceError(f"{CERT_ENV} and {KEY_ENV} go together; {missing} is not set")
        return _configured_identity(Path(cert).expanduser(), Path(key).expanduser())
    folder = _folder_of(config_dir)
    if not (folder / KEY_FILE).is_file():
        _create_local_identity(folder)
    return _read_identity(folder / CHAIN_FILE, folder / KEY_FILE, folder / ROOT_CERT_FILE)


def default_trust_anchors(config_dir: Path | None = None) -> list[Path]:
    """The roots trusted by default: the local root, if one was made, and the files listed in
    ``KINETOSCOPE_C2PA_TRUST``. Never creates anything."""
    anchors = [path for path in [_folder_of(config_dir) / ROOT_CERT_FILE] if path.is_file()]
    listed = os.environ.get(TRUST_ENV, "")
    anchors += [Path(entry).expanduser() for entry in listed.split(os.pathsep) if entry]
    return anchors


def _folder_of(config_root: Path | None) -> Path:
    """The identity folder inside a configuration folder (default: the user's)."""
    return (config_root if config_root is not None else config_dir()) / IDENTITY_FOLDER


# ---------------------------------------------------------------------------------------------
# Reading


def _configured_identity(chain_path: Path, key_path: Path) -> SigningIdentity:
    """The identity in the files the environment names, anchored by the first trust file."""
    trust = os.environ.get(TRUST_ENV, "")
    root = next((Path(entry).expanduser() for entry in trust.split(os.pathsep) if entry), None)
    return _read_identity(chain_path, key_path, root)


def _read_identity(chain_path: Path, key_path: Path, root: Path | None) -> SigningIdentity:
    """Read and cross-check a chain and key: the key must belong to the first certificate."""
    chain_pem, key_pem = _read_pem(chain_path, "certificate chain"), _read_pem(key_path, "key")
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ProvenanceError(f"{chain_path}: not a PEM certificate chain ({exc})") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"{key_path}: not an unencrypted PEM private key ({exc})") from exc
    if certificates[0].public_key() != key.public_key():
        raise ProvenanceError(f"{key_path} is not the key of the first certificate in {chain_path}")
    return SigningIdentity(
        certificate_chain_pem=chain_pem,
        private_key_pem=key_pem,
        algorithm=_algorithm_of(key, key_path),
        root_ca_path=root if root is not None and root.is_file() else None,
    )


def _read_pem(path: Path, what: str) -> bytes:
    """The bytes of a PEM file, or a ProvenanceError naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProvenanceError(f"{path}: cannot read the {what} ({exc.strerror})") from exc


def _algorithm_of(key: object, key_path: Path) -> str:
    """The C2PA signature algorithm a private key signs with."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ProvenanceError(
        f"{key_path}: C2PA cannot sign with this key type; use EC P-256/384/521, RSA or Ed25519"
    )


# ---------------------------------------------------------------------------------------------
# Creating the local identity


def _create_local_identity(folder: Path) -> None:
    """Make a root CA and a signing certificate in ``folder``, all at once or not at all."""
    staging = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.tmp")
    try:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir(mode=0o700)
            _write_new_identity(staging)
        except OSError as exc:
            raise ProvenanceError(f"{folder}: cannot create the signing identity ({exc})") from exc
        try:
            os.rename(staging, folder)
        except OSError:
            # another process put its identity there first (use it), or something else is there
            if not (folder / KEY_FILE).is_file():
                raise ProvenanceError(
                    f"{folder} exists but holds no signing key; move it away to make a new one"
                ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_new_identity(staging: Path) -> None:
    """Issue a root and a signing certificate and write them, keys 0600, into ``staging``."""
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(hours=1)  # tolerate clocks a little behind
    root_key, signer_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    tag = secrets.token_hex(4)  # tells apart the roots of different installations
    root = _root_certificate(root_key, tag, start, now)
    signer = _signer_certificate(signer_key, root, root_key, tag, start, now)
    _write_private(staging / ROOT_KEY_FILE, _pkcs8(root_key))
    _write_private(staging / KEY_FILE, _pkcs8(signer_key))
    (staging / ROOT_CERT_FILE).write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (staging / CHAIN_FILE).write_bytes(signer.public_bytes(serialization.Encoding.PEM))


def _root_certificate(
    key: ec.EllipticCurvePrivateKey,
    tag: str,
    start: datetime.datetime,
    now: datetime.datetime,
) -> x509.Certificate:
    """A self-signed CA certificate that may only issue end-entity certificates."""
    name = _name(f"Kinetoscope local root {tag}")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=365 * _ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _signer_certificate(
    key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    tag: str,
    start: datetime.datetime,
    now: datetime.datetime,
) -> x509.Certificate:
    """An end-entity certificate for signing manifests, issued by ``root``."""
    public = key.public_key()
    root_identifier = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"Kinetoscope local signer {tag}"))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=365 * _SIGNER_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_identifier),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def _name(common_name: str) -> x509.Name:
    """A subject name in the Kinetoscope organisation."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    """Key usage: certificate and CRL signing for a CA, digital signatures otherwise."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    """An unencrypted PKCS#8 PEM private key (file permissions protect it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, created with that mode from the start."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
