"""The unit's own keys: kept beside the database, never inside it.

- The **signing key** (Ed25519) signs every evidence bundle. Its public half goes
  to the department (``alprd keys export-public``), which checks bundles with it
  away from the unit: without it, a consistent edit of a bundle cannot be told
  from the real thing.
- The **audit secret** (32 random bytes) keys the access log's MACs and its head
  anchor, so someone who can write the database file but not this one cannot
  re-hash, cut or rewrite the log unseen.

Both files are created once, mode 0600, and never overwritten: a new key would
silently disown everything the old one vouched for.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

AUDIT_SECRET_FILE = "audit.key"
SIGNING_KEY_FILE = "signing.key"
SECRET_BYTES = 32
KEY_FILE_MODE = 0o600


class KeyFileError(ValueError):
    """A key file is missing, unreadable or not a key; the message says how to fix it."""


def _write_aside(path: Path, data: bytes) -> str:
    """A temporary file (mode 0600) beside ``path`` holding ``data``, synced to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), KEY_FILE_MODE)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def create_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file ``path`` (mode 0600) whole or not at all; False if it exists.

    Written aside and hard-linked into place, so two processes creating at once
    end with one file, and no reader ever sees it half written.
    """
    tmp = _write_aside(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` (mode 0600) in one step: a reader sees the old file or the new one, whole."""
    tmp = _write_aside(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_file(path: Path, what: str) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise KeyFileError(f"{path}: the {what} cannot be read ({err.strerror or err}): "
                           "run alprd as the alprd user (sudo -u alprd alprd ...)") from None


# -- the audit secret -----------------------------------------------------------------

def read_secret(path: Path) -> bytes | None:
    """The audit secret, or None when there is none yet."""
    data = read_file(path, "access-log secret")
    if data is not None and len(data) != SECRET_BYTES:
        raise KeyFileError(f"{path}: not an access-log secret ({len(data)} bytes, expected {SECRET_BYTES}); "
                           "restore the unit's own file from its backup")
    return data


def create_secret(path: Path) -> bytes:
    """A new audit secret, unless another process made one first (then that one)."""
    create_once(path, secrets.token_bytes(SECRET_BYTES))
    secret = read_secret(path)
    assert secret is not None
    return secret


# -- the signing key ------------------------------------------------------------------

def signing_key(path: Path) -> Ed25519PrivateKey:
    """The unit's signing key, created on first use."""
    data = read_file(path, "signing key")
    if data is None:
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        create_once(path, pem)
        data = read_file(path, "signing key") or b""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key in PEM; restore the unit's own file from its "
                           "backup (a new key would not match the public key the department holds)")
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file as ``alprd keys export-public`` writes it."""
    data = read_file(path, "public key")
    if data is None:
        raise KeyFileError(f"{path}: no such file (the unit's public key: alprd keys export-public on the unit)")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key in PEM (write it with alprd keys export-public)")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint that names the key in a bundle and on the department's list."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode()


def signature_valid(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True

