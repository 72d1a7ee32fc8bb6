"""Evidence bundles for portable media, and their verification.

A bundle is a folder: ``reads.json`` and ``reads.csv`` (the same reads),
``crops/<read id>.jpg``, ``audit.json`` (the access-log record of the export,
with its chain hash) and ``manifest.json`` listing the SHA-256 of every other
file. The audit record carries ``content_sha256``, a digest of the file list
without itself, so a bundle whose files were swapped *and* re-listed in the
manifest still fails against the access log on the unit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alprd.policy.search import public_read
from alprd.records import utc_now

FORMAT = "alprd-evidence-1"
MANIFEST, AUDIT = "manifest.json", "audit.json"
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


def write_bundle(dest: Path, reads: list[dict[str, Any]], about: dict[str, Any], record: RecordExport) -> dict:
    """Write the bundle; ``record(query, count)`` writes the access record and returns it."""
    if dest.exists() and any(dest.iterdir()):
        raise ExportError(f"{dest} is not empty: export into a new or empty folder")
    (dest / "crops").mkdir(parents=True, exist_ok=True)
    rows = []
    for read in reads:
        crop_file = None
        if read.get("crop_jpeg"):
            crop_file = f"crops/{read['id']}.jpg"
            (dest / crop_file).write_bytes(read["crop_jpeg"])
        rows.append(public_read(read, crop_file))
    (dest / "reads.json").write_text(json.dumps({"export": about, "reads": rows}, indent=1), encoding="utf-8")
    (dest / "reads.csv").write_text(_csv(rows), encoding="utf-8", newline="")
    files = {p.relative_to(dest).as_posix(): sha256_file(p) for p in sorted(dest.rglob("*")) if p.is_file()}
    audit = record({**about, "to": str(dest), "content_sha256": content_digest(files)}, len(rows))
    (dest / AUDIT).write_text(json.dumps(audit, indent=1), encoding="utf-8")
    files[AUDIT] = sha256_file(dest / AUDIT)
    manifest = {"format": FORMAT, "created_at": utc_now(), "export": about, "reads": len(rows),
                "files": [{"path": p, "sha256": h} for p, h in sorted(files.items())]}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def verify_bundle(folder: Path) -> tuple[list[str], dict[str, Any] | None]:
    """(problems, the export's audit record); no problems means every file is as exported."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{folder / MANIFEST}: missing or unreadable ({err}); not an alprd evidence bundle"], None
    problems = []
    for path, digest in sorted(listed.items()):
        file = folder / path
        if not file.is_file():
            problems.append(f"{path}: missing")
        elif sha256_file(file) != digest:
            problems.append(f"{path}: changed (SHA-256 differs from the manifest)")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    problems += [f"{p}: not in the manifest (added after export)" for p in sorted(present - set(listed) - {MANIFEST})]
    audit = None
    try:
        audit = json.loads((folder / AUDIT).read_text(encoding="utf-8"))
        recorded = json.loads(audit["query"])["content_sha256"]
        if recorded != content_digest({p: h for p, h in listed.items() if p != AUDIT}):
            problems.append("manifest lists other files than the export's audit record vouches for")
    except (OSError, ValueError, KeyError, TypeError):
        problems.append(f"{AUDIT}: missing or unreadable; the export's audit record cannot be checked")
    return problems, audit
