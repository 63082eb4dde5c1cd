"""The signing identity: made once per configuration folder, kept private, or configured."""

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from kinetoscope.errors import KinetoscopeError
from kinetoscope.provenance.identity import (
    CERT_ENV,
    CONFIG_DIR_ENV,
    KEY_ENV,
    TRUST_ENV,
    ProvenanceError,
    config_dir,
    default_trust_anchors,
    load_identity,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_makes_a_private_identity_in_the_config_folder(config):
    identity = load_identity()
    folder = config / "c2pa"
    assert identity.root_ca_path == folder / "root-ca.pem"
    assert identity.algorithm == "es256"
    assert mode(folder) == 0o700
    for key_file in folder.glob("*.key"):
        assert mode(key_file) == 0o600
    assert sorted(path.name for path in folder.glob("*.key")) == ["root-ca.key", "signer.key"]
    assert (folder / "signer.key").read_bytes() == identity.private_key_pem
    assert b"BEGIN PRIVATE KEY" in identity.private_key_pem  # PKCS#8, not SEC1


def test_the_identity_is_reused_on_the_next_load(config):
    first = load_identity()
    second = load_identity(config)
    assert second == first


def test_the_signing_certificate_is_one_c2pa_validators_accept(config):
    identity = load_identity()
    (signer,) = x509.load_pem_x509_certificates(identity.certificate_chain_pem)
    root = x509.load_pem_x509_certificate(identity.root_ca_path.read_bytes())
    signer.verify_directly_issued_by(root)
    assert signer.version == x509.Version.v3
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = signer.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    extended = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in extended
    authority = signer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_subject = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == root_subject.digest
    assert signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = serialization.load_pem_private_key(identity.private_key_pem, password=None)
    assert key.public_key() == signer.public_key()


def test_loads_at_the_same_time_agree_on_one_identity(config):
    with ThreadPoolExecutor(max_workers=4) as pool:
        identities = list(pool.map(lambda _: load_identity(), range(8)))
    assert all(identity == identities[0] for identity in identities)
    assert [path.name for path in config.iterdir()] == ["c2pa"]  # no staging folder left


def test_a_folder_without_a_key_is_never_overwritten(config):
    folder = config / "c2pa"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ProvenanceError, match="holds no signing key"):
        load_identity()
    assert [path.name for path in folder.iterdir()] == ["notes.txt"]
    assert issubclass(ProvenanceError, KinetoscopeError)


def test_the_config_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_DIR_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "kinetoscope"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "kinetoscope"
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "mine"))
    assert config_dir() == tmp_path / "mine"


def test_a_configured_chain_and_key_are_used_instead(tmp_path, config, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    made = load_identity(elsewhere)
    monkeypatch.setenv(CERT_ENV, str(elsewhere / "c2pa" / "signer-chain.pem"))
    monkeypatch.setenv(KEY_ENV, str(elsewhere / "c2pa" / "signer.key"))
    monkeypatch.setenv(TRUST_ENV, str(made.root_ca_path))
    configured = load_identity()
    assert configured == made
    assert not (config / "c2pa").exists()  # nothing made when one is configured


def test_a_configured_identity_needs_both_files(tmp_path, monkeypatch):
    monkeypatch.setenv(CERT_ENV, str(tmp_path / "chain.pem"))
    with pytest.raises(ProvenanceError, match=KEY_ENV):
        load_identity()


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path, monkeypatch):
    first, second = load_identity(tmp_path / "a"), load_identity(tmp_path / "b")
    assert first.private_key_pem != second.private_key_pem
    monkeypatch.setenv(CERT_ENV, str(tmp_path / "a" / "c2pa" / "signer-chain.pem"))
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "b" / "c2pa" / "signer.key"))
    with pytest.raises(ProvenanceError, match="is not the key of the first certificate"):
        load_identity()


def test_a_missing_configured_file_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.pem"
    monkeypatch.setenv(CERT_ENV, str(missing))
    monkeypatch.setenv(KEY_ENV, str(missing))
    with pytest.raises(ProvenanceError, match=r"nowhere\.pem"):
        load_identity()


def test_trust_anchors_are_the_local_root_and_the_listed_files(tmp_path, monkeypatch):
    assert default_trust_anchors() == []  # reading never makes an identity
    root = load_identity().root_ca_path
    assert default_trust_anchors() == [root]
    extra = [tmp_path / "a.pem", tmp_path / "b.pem"]
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join(map(str, extra)))
    assert default_trust_anchors() == [root, *extra]
