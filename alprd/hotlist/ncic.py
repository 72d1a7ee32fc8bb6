"""NCIC/state hot-file extracts: the department's source list. Pure (text in, entries out).

States hand out the NCIC hot files (twice a day, typically) as delimited text
with a header of NCIC field codes; alprd reads that form, ``|``, tab or comma
separated::

    FILE|LIC|LIS|LIT|LIY|VYR|VMA|VMO|VCO|NIC|ORI|OCA|DTE|EXP|MIS
    V|ABC1234|CO|PC|2027|2019|HOND|CIV|BLU|V123456789|CO0010000|24-001234|20261101|20271101|

``FILE`` is the NCIC file the record comes from (:data:`FILE_CATEGORIES`); a
record of another file (protection orders, gangs ...) is counted and skipped,
as is a person record (``W``, ``MP``) with no vehicle. ``NIC`` (the NCIC number
an officer quotes to confirm the hit) becomes the case number, ``ORI`` the
source; plate type and year, the vehicle's description and ``OCA`` go into the
note, for the officer checking the car against the alert. Entry date ``DTE``
is required; a row past ``EXP`` is skipped and counted.

Personal data never enters the list: the columns of :data:`PERSONAL_CODES`
(names, dates of birth, race, sex ...) are dropped whole and named in the
summary, and ``MIS`` (free text, which may name people) is read only for the
AMBER Alert marker NCIC policy puts there, never stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from alprd.config import HotlistConfig, clip
from alprd.hotlist.entries import (
    PERSONAL_FIELDS,
    Entry,
    EntryError,
    ParseResult,
    RowError,
    decode_file,
    delimited_rows,
    drop_expired,
    make_entry,
)

# NCIC file code -> our category. Missing-person records marked AMBER ALERT become amber_alert.
FILE_CATEGORIES: dict[str, str] = {
    "V": "stolen_vehicle",  # Vehicle File
    "LP": "stolen_plate",  # License Plate File
    "F": "felony_vehicle",  # Vehicle File, vehicle used in a felony
    "W": "wanted_person",  # Wanted Person File, a vehicle in the record
    "MP": "missing_person",  # Missing Person File, a vehicle in the record
}
PERSON_FILES = ("W", "MP")  # their records often have no vehicle: skipped and counted, not malformed
AMBER_MARK = "AMBER ALERT"
AMBER_CATEGORY = "amber_alert"
PERSONAL_CODES: dict[str, str] = {
    "NAM": "name", "DOB": "date of birth", "RAC": "race", "SEX": "sex", "ETN": "ethnicity",
    "SOC": "SSN", "OLN": "driver's licence number", "FBI": "FBI number", "POB": "place of birth",
    "HGT": "height", "WGT": "weight", "EYE": "eye colour", "HAI": "hair colour", "SKN": "skin tone",
    "SMT": "scars, marks, tattoos",
}
REQUIRED = ("FILE", "LIC", "NIC", "DTE")
USED = (*REQUIRED, "LIS", "LIT", "LIY", "VYR", "VMA", "VMO", "VCO", "ORI", "OCA", "EXP", "MIS")
_FILE_CODE = re.compile(r"^[A-Z]{1,4}$")  # what an NCIC file code looks like; else the row is malformed


def _delimiter(header_line: str) -> str:
    return next((d for d in ("|", "\t") if d in header_line), ",")


def _personal(code: str) -> str | None:
    return PERSONAL_CODES.get(code) or PERSONAL_FIELDS.get(re.sub(r"[^a-z0-9]", "", code.lower()))


def _note(row: Mapping[str, str]) -> str:
    """What the officer checks the car against: plate type and year, the vehicle, the agency's case."""
    plate = " ".join(f"{label} {row[c]}" for label, c in (("type", "LIT"), ("year", "LIY")) if row.get(c))
    vehicle = " ".join(row[c] for c in ("VYR", "VMA", "VMO", "VCO") if row.get(c))
    parts = [f"plate {plate}" if plate else "", vehicle, f"OCA {row['OCA']}" if row.get("OCA") else ""]
    return "; ".join(p for p in parts if p)


def _category(code: str, mis: str) -> str:
    category = FILE_CATEGORIES[code]
    return AMBER_CATEGORY if code == "MP" and AMBER_MARK in mis.upper() else category


def parse_extract(data: str | bytes, cfg: HotlistConfig, on: date | None = None) -> ParseResult:
    """An NCIC extract's entries, with what was skipped and why; EntryError if unusable as a whole."""
    text = decode_file(data) if isinstance(data, bytes) else data
    header_line = text.split("\n", 1)[0]
    header, rows = delimited_rows(text, _delimiter(header_line))
    codes = [h.strip().upper() for h in header]
    missing = [c for c in REQUIRED if c not in codes]
    if missing:
        raise EntryError(f"not an NCIC extract: the header {clip(repr(header_line))} lacks {', '.join(missing)} "
                         f"(a header of NCIC field codes: {'|'.join(USED)})")
    result = ParseResult(
        personal_columns=[h for h, c in zip(header, codes, strict=True) if _personal(c)],
        ignored_columns=[h for h, c in zip(header, codes, strict=True) if c not in USED and not _personal(c)],
    )
    for where, row in rows:
        try:
            if isinstance(row, EntryError):
                raise row
            entry = _entry({c: str(row[h]).strip() for h, c in zip(header, codes, strict=True)}, cfg, result)
        except EntryError as err:
            result.errors.append(RowError(where, str(err)))
            continue
        if entry is not None:
            result.entries.append(entry)
    return drop_expired(result, on)


def _entry(row: Mapping[str, str], cfg: HotlistConfig, result: ParseResult) -> Entry | None:
    """One record's entry, or None when it is skipped (and counted in ``result``); raises EntryError."""
    code = row["FILE"].upper()
    if code not in FILE_CATEGORIES:
        if not _FILE_CODE.match(code):
            raise EntryError(f"file code {clip(repr(row['FILE']))} is not an NCIC file code "
                             f"(alprd imports {', '.join(FILE_CATEGORIES)})")
        result.other_files[code] = result.other_files.get(code, 0) + 1
        return None
    if not row["LIC"] and code in PERSON_FILES:
        result.without_plate += 1
        return None
    if not row["DTE"]:
        raise EntryError("no entry date (DTE)")
    return make_entry({
        "pattern": row["LIC"], "state": row.get("LIS", ""), "category": _category(code, row.get("MIS", "")),
        "source": row.get("ORI", ""), "case_number": row["NIC"], "entered": row["DTE"],
        "expires": row.get("EXP", ""), "note": _note(row),
    }, cfg)
