"""Evidence bundles for portable media, and their verification.

A bundle is a folder: ``reads.json`` and ``reads.csv`` (the same reads),
``crops/<read id>.jpg``, ``audit.json`` (the access-log record of the export),
``manifest.json`` listing the SHA-256 of every other file and the audit record
itself, and ``manifest.sig``: the unit's Ed25519 signature of ``manifest.json``.
The audit record carries ``content_sha256``, a digest of the file list, so the
files it vouches for are fixed in the unit's access log too.

:func:`verify_bundle` recomputes every hash from the bytes and fields it has,
refuses manifest paths that leave the folder, and reports what it could not
check: without the unit's public key, a bundle edited consistently (files,
manifest and audit record re-hashed together) cannot be told from the real one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from alprd.audit.accesslog import record_hash
from alprd.keys import key_id, sign, signature_valid
from alprd.policy.search import public_read
from alprd.records import utc_now

FORMAT = "alprd-evidence-2"
MANIFEST, AUDIT, SIGNATURE = "manifest.json", "audit.json", "manifest.sig"
FILE_MODE, DIR_MODE = 0o640, 0o750
RecordExport = Callable[[dict[str, Any], int], dict[str, Any]]


class ExportError(ValueError):
    """The bundle cannot be written where asked."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_digest(files: dict[str, str]) -> str:
    """One digest for a {path: sha256} listing (order does not matter)."""
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["id"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _write(path: Path, data: bytes) -> None:
    """A new file, mode 0640 whatever the umask: a bundle holds plates and positions."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb") as f:
        f.write(data)


def write_bundle(dest: Path, reads: list[dict[str, Any]], about: dict[str, Any], record: RecordExport,
                 key: Ed25519PrivateKey) -> dict:
    """Write and sign the bundle; ``record(query, count)`` writes the access record and returns it."""
    if dest.exists() and any(dest.iterdir()):
        raise ExportError(f"{dest} is not empty: export into a new or empty folder")
    dest.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    (dest / "crops").mkdir(mode=DIR_MODE, exist_ok=True)
    rows = []
    for read in reads:
        crop_file = None
        if read.get("crop_jpeg"):
            crop_file = f"crops/{read['id']}.jpg"
            _write(dest / crop_file, read["crop_jpeg"])
        rows.append(public_read(read, crop_file))
    _write(dest / "reads.json", json.dumps({"export": about, "reads": rows}, indent=1).encode())
    _write(dest / "reads.csv", _csv(rows).encode())
    files = {p.relative_to(dest).as_posix(): sha256_file(p) for p in sorted(dest.rglob("*")) if p.is_file()}
    audit = record({**about, "to": str(dest), "content_sha256": content_digest(files)}, len(rows))
    _write(dest / AUDIT, json.dumps(audit, indent=1).encode())
    files[AUDIT] = sha256_file(dest / AUDIT)
    manifest = {"format": FORMAT, "created_at": utc_now(), "export": about, "reads": len(rows), "audit": audit,
                "signed_by": {"algorithm": "Ed25519", "key_id": key_id(key.public_key())},
                "files": [{"path": p, "sha256": h} for p, h in sorted(files.items())]}
    data = json.dumps(manifest, indent=1).encode()
    _write(dest / MANIFEST, data)
    _write(dest / SIGNATURE, (sign(key, data) + "\n").encode())
    return manifest


@dataclass
class BundleCheck:
    """What :func:`verify_bundle` found: problems, and what it did and did not check."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    audit: dict[str, Any] | None = None


def member(folder: Path, path: Any) -> Path | None:
    """The file a manifest path names, or None if it would leave the bundle (absolute, ``..``, a link out)."""
    if not isinstance(path, str) or not path or "\\" in path or ":" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    file = folder / pure
    root = folder.resolve()
    return file if file.resolve().is_relative_to(root) else None


def _check_files(folder: Path, listed: dict[str, str], result: BundleCheck) -> None:
    bad = 0
    for path, digest in sorted(listed.items()):
        file = member(folder, path)
        if file is None:
            result.problems.append(f"{path!r}: refused: the manifest names a file outside the bundle "
                                   "(absolute, with .., or through a link); it was altered")
        elif not file.is_file():
            result.problems.append(f"{path}: missing")
        elif sha256_file(file) != digest:
            result.problems.append(f"{path}: changed (SHA-256 differs from the manifest)")
        else:
            continue
        bad += 1
    if not bad:
        result.checked.append(f"{len(listed)} files listed in {MANIFEST}: each SHA-256 recomputed from its bytes, "
                              "all match")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    added = sorted(present - set(listed) - {MANIFEST, SIGNATURE})
    result.problems += [f"{p}: not in the manifest (added after export)" for p in added]
    if not added:
        result.checked.append("no file in the folder beyond those listed")


def _check_audit(folder: Path, manifest: dict[str, Any], listed: dict[str, str], result: BundleCheck) -> None:
    try:
        audit = json.loads((folder / AUDIT).read_text(encoding="utf-8"))
        recorded = json.loads(audit["query"])["content_sha256"]
        own_hash = record_hash(audit["prev_hash"], audit)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        result.problems.append(f"{AUDIT}: missing or unreadable; the export's audit record cannot be checked")
        return
    result.audit = audit
    problems = []
    if own_hash != audit["hash"]:
        problems.append(f"{AUDIT}: its hash does not match its fields (the record was edited)")
    if "audit" in manifest and manifest["audit"] != audit:
        problems.append(f"{AUDIT} differs from the audit record in {MANIFEST}")
    if recorded != content_digest({p: h for p, h in listed.items() if p != AUDIT}):
        problems.append("manifest lists other files than the export's audit record vouches for")
    result.problems += problems
    if not problems:
        result.checked.append(f"audit record {audit.get('seq')}: hash recomputed from its fields, matches; it "
                              "vouches for the listed files")


def _check_signature(folder: Path, manifest_bytes: bytes, manifest: dict[str, Any],
                     public_key: Ed25519PublicKey | None, result: BundleCheck) -> None:
    if public_key is None:
        result.unchecked.append("signature: NOT CHECKED, no public key given (--public-key FILE: the unit's key, "
                                "from the department); without it a consistent edit of the whole bundle passes")
        return
    kid = key_id(public_key)
    try:
        signature = (folder / SIGNATURE).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        result.problems.append(f"{SIGNATURE}: missing or unreadable: the bundle is not signed")
        return
    if not signature_valid(public_key, manifest_bytes, signature):
        signed_by = manifest.get("signed_by")
        signer = signed_by.get("key_id") if isinstance(signed_by, dict) else None
        other = f" (the manifest names key {signer})" if signer and signer != kid else ""
        result.problems.append(f"{SIGNATURE}: not a valid signature of {MANIFEST} by key {kid}{other}: the manifest "
                               "was altered, or another unit signed it")
        return
    result.checked.append(f"signature of {MANIFEST}: valid (Ed25519, key {kid})")


def verify_bundle(folder: Path, public_key: Ed25519PublicKey | None = None) -> BundleCheck:
    """Check every file, the audit record and (given the unit's public key) the signature."""
    result = BundleCheck()
    try:
        manifest_bytes = (folder / MANIFEST).read_bytes()
        manifest = json.loads(manifest_bytes)
        listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        result.problems.append(f"{folder / MANIFEST}: missing or unreadable ({err}); not an alprd evidence bundle")
        return result
    _check_files(folder, listed, result)
    _check_audit(folder, manifest, listed, result)
    _check_signature(folder, manifest_bytes, manifest, public_key, result)
    return result


def compare_with_log(audit: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    """A problem if the bundle's audit record is not the unit's record of that seq (its hash and MAC)."""
    if row is None:
        return f"{AUDIT}: this unit's access log has no record {audit.get('seq')}"
    if (row["hash"], row.get("mac")) != (audit.get("hash"), audit.get("mac")):
        return f"{AUDIT} differs from access record {audit.get('seq')} on this unit"
    return None
