"""Hotlist entries and the rules a row must pass to become one. Pure logic.

Rows come from an NCIC-style CSV extract, our JSON formats, a sync message or
an officer at the keyboard; all go through :func:`make_entry`, so the policy
rules live in one place:

- the category must be configured and not denied (hotlists are not for minor
  traffic offences);
- a row carrying personal data (name, date of birth, SSN, race, sex) is refused
  whole: alprd stores none, and guessing which part is safe to keep is not ours;
- the plate pattern uses A-Z, 0-9 and the wildcards ``?`` and ``*``.

A bad row is reported with where it was (``line 7``) and skipped; the others load.
A file that is not UTF-8 is refused whole, naming the first line that is not
(its other rows could be mis-decoded without a trace), and the list in use stays.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from alprd.config import HotlistConfig, clip
from alprd.hotlist.match import fold_stars, is_wildcard

MAX_PATTERN_LEN = 10
MIN_WILDCARD_LITERALS = 3  # "*" alone would match every car on the road
PRIORITY_RANGE = (1, 9)  # 1 = most urgent
DEFAULT_PRIORITY = 5

# Column names seen in NCIC extracts and vendor hotlists, folded by _fold().
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "pattern": ("pattern", "plate", "platenumber", "lic", "license", "licenseplate", "tag", "vrm"),
    "state": ("state", "lis", "region", "platestate", "licensestate"),
    "category": ("category", "file", "ncicfile", "hitcategory", "alerttype"),
    "priority": ("priority", "pri"),
    "source": ("source", "sourcelist", "list", "ori", "agency"),
    "case_number": ("casenumber", "case", "cfs", "cfsnumber", "oca", "nic", "ncicnumber"),
    "entered": ("entered", "dte", "entrydate", "dateentered"),
    "expires": ("expires", "exp", "expiry", "expiration", "expirationdate", "expirydate"),
    "note": ("note", "notes", "remarks", "mis", "comment"),
}
PERSONAL_FIELDS: dict[str, str] = {
    **dict.fromkeys(("name", "nam", "firstname", "lastname", "fullname", "owner", "ownername"), "name"),
    **dict.fromkeys(("dob", "dateofbirth", "birthdate"), "date of birth"),
    **dict.fromkeys(("ssn", "soc", "socialsecuritynumber"), "SSN"),
    **dict.fromkeys(("race", "rac", "ethnicity"), "race"),
    **dict.fromkeys(("sex", "gender"), "sex"),
}
_FIELD_OF = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
_PATTERN_CHARS = re.compile(r"^[A-Z0-9?*]+$")
_SEPARATORS = re.compile(r"[\s\-.]")
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y")


class EntryError(ValueError):
    """Why one row cannot be used, worded for the person fixing the file."""


@dataclass(frozen=True)
class Entry:
    pattern: str
    category: str
    state: str = ""
    priority: int = DEFAULT_PRIORITY
    source: str = ""
    case_number: str = ""
    entered: str = ""  # YYYY-MM-DD
    expires: str = ""  # YYYY-MM-DD, empty = no expiry
    note: str = ""
    officer_entered: bool = False

    def to_json(self) -> dict[str, Any]:
        """The entry as our JSON format writes it (empty fields left out)."""
        return {k: v for k, v in asdict(self).items() if v not in ("", False)}


@dataclass
class RowError:
    where: str  # "line 7", "entry 3"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ParseResult:
    entries: list[Entry] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    expired: int = 0  # valid rows past their expiry: skipped, counted
    other_files: dict[str, int] = field(default_factory=dict)  # NCIC extract: rows of files not imported, by code
    without_plate: int = 0  # NCIC extract: person records with no vehicle
    personal_columns: list[str] = field(default_factory=list)  # NCIC extract: dropped, never stored


def _fold(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def normalize_category(text: str) -> str:
    """'Stolen Vehicle' -> 'stolen_vehicle'."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def normalize_pattern(text: str) -> str:
    """Upper-case, drop spaces, dashes and dots, fold ``**`` to ``*``; refuse what is not a plate."""
    p = fold_stars(_SEPARATORS.sub("", str(text).upper()))
    if not p:
        raise EntryError("no plate (the plate/pattern column is empty)")
    if not _PATTERN_CHARS.match(p):
        raise EntryError(f"plate {clip(repr(text))} has characters other than A-Z, 0-9, ? and *")
    if len(p.replace("*", "")) > MAX_PATTERN_LEN:
        raise EntryError(f"plate {clip(repr(text))} is longer than {MAX_PATTERN_LEN} characters")
    if is_wildcard(p) and len(p) - p.count("?") - p.count("*") < MIN_WILDCARD_LITERALS:
        raise EntryError(f"partial plate {clip(repr(text))} needs at least {MIN_WILDCARD_LITERALS} known characters")
    return p


def parse_date(text: str, what: str) -> str:
    text = str(text).strip()
    if not text:
        return ""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text[:10] if fmt == "%Y-%m-%d" else text, fmt).date().isoformat()
        except ValueError:
            continue
    raise EntryError(f"{what} date {clip(repr(text))} not understood (write YYYY-MM-DD)")


def check_category(text: str, cfg: HotlistConfig) -> str:
    cat = normalize_category(text)
    if not cat:
        raise EntryError("no category (add a category column, or give --category)")
    if cat in cfg.denied_categories:
        raise EntryError(f"category {clip(repr(cat))} is denied by policy ([hotlist] denied_categories): "
                         "hotlists may not be used for minor traffic offences")
    if cat not in cfg.categories:
        raise EntryError(f"unknown category {clip(repr(cat))} (configured: {', '.join(cfg.categories)}; "
                         "add it to [hotlist] categories if it is allowed)")
    return cat


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def make_entry(fields: Mapping[str, Any], cfg: HotlistConfig, defaults: Mapping[str, Any] | None = None,
               officer_entered: bool = False) -> Entry:
    """Validate one row whose keys may be any known alias; raises EntryError.
    A row without a priority takes its category's from ``[hotlist] priorities``."""
    values: dict[str, Any] = dict(defaults or {})
    personal: list[str] = []
    for key, value in fields.items():
        if value is None or str(value).strip() == "":
            continue
        folded = _fold(str(key))
        if folded in PERSONAL_FIELDS:
            personal.append(PERSONAL_FIELDS[folded])
        elif folded in _FIELD_OF:
            values[_FIELD_OF[folded]] = value
    if personal:
        raise EntryError(f"row carries personal data ({', '.join(sorted(set(personal)))}); alprd stores "
                         "no personal data: remove those columns from the extract and import again")
    pattern = normalize_pattern(values.get("pattern", ""))
    category = check_category(str(values.get("category", "")), cfg)
    try:
        priority = int(values.get("priority", cfg.priorities.get(category, DEFAULT_PRIORITY)))
    except (TypeError, ValueError, OverflowError):
        raise EntryError(f"priority {clip(repr(values['priority']))} is not a whole number") from None
    lo, hi = PRIORITY_RANGE
    if not lo <= priority <= hi:
        raise EntryError(f"priority {priority} is outside {lo}..{hi} (1 = most urgent)")
    return Entry(
        pattern=pattern,
        category=category,
        state=_SEPARATORS.sub("", str(values.get("state", "")).upper())[:8],
        priority=priority,
        source=str(values.get("source", "")).strip(),
        case_number=str(values.get("case_number", "")).strip(),
        entered=parse_date(values.get("entered", ""), "entered") or today(),
        expires=parse_date(values.get("expires", ""), "expiry"),
        note=str(values.get("note", "")).strip(),
        officer_entered=officer_entered,
    )


Row = Mapping[str, Any] | EntryError  # a row, or why the file's line could not become one


def iter_entries(rows: Iterable[tuple[str, Any]], cfg: HotlistConfig, errors: list[RowError],
                 defaults: Mapping[str, Any] | None = None) -> Iterator[Entry]:
    """Validate (where, row) pairs lazily: good rows are yielded, bad ones appended to ``errors``."""
    for where, row in rows:
        try:
            if isinstance(row, EntryError):
                raise row
            if not isinstance(row, Mapping):
                raise EntryError("not an object with named fields")
            entry = make_entry(row, cfg, defaults)
        except EntryError as err:
            errors.append(RowError(where, str(err)))
            continue
        yield entry


def entries_from_rows(rows: Iterable[tuple[str, Any]], cfg: HotlistConfig,
                      defaults: Mapping[str, Any] | None = None,
                      result: ParseResult | None = None) -> ParseResult:
    """Validate (where, row) pairs: good rows become entries, bad ones errors."""
    result = result if result is not None else ParseResult()
    result.entries.extend(iter_entries(rows, cfg, result.errors, defaults))
    return result


def decode_file(data: bytes) -> str:
    """A list file's text (UTF-8, with or without BOM); EntryError naming the first line that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise EntryError(f"line {line} is not UTF-8 text (byte 0x{data[err.start]:02X}); save the file as "
                         "UTF-8 (Excel: 'CSV UTF-8'), or convert it: iconv -f latin1 -t utf-8") from None


def _csv_records(reader: Any) -> Iterator[tuple[str, Mapping[str, Any] | csv.Error]]:
    """(where, row or the csv module's error) for each record, however many lines it spans."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield f"line {start}", err
            continue
        end = reader.line_num
        yield (f"line {start}" if end == start else f"lines {start}-{end}"), row


def delimited_rows(text: str, delimiter: str = ",") -> tuple[list[str], Iterator[tuple[str, Row]]]:
    """The header and (where, row or why not) of a delimited file; EntryError if the header is unreadable."""
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    try:
        header = reader.fieldnames or []
    except csv.Error as err:
        raise EntryError(f"line 1: the header is not valid CSV ({err})") from None
    return list(header), _checked_rows(reader, len(header))


def _checked_rows(reader: Any, width: int) -> Iterator[tuple[str, Row]]:
    for where, row in _csv_records(reader):
        if isinstance(row, csv.Error):
            yield where, EntryError(f"not valid CSV ({row}): a quote left open? fix or remove the row")
        elif None in row or None in row.values():
            message = f"wrong number of fields (the header has {width})"
            if where.startswith("lines"):
                message += "; a quoted field runs over these lines: is a quote left open?"
            yield where, EntryError(message)
        else:
            yield where, row


def _csv_rows(text: str, result: ParseResult) -> Iterator[tuple[str, Row]]:
    header, rows = delimited_rows(text)
    folded = [_fold(h) for h in header]
    if not any(_FIELD_OF.get(f) == "pattern" for f in folded):
        raise EntryError(f"no plate column in the header {clip(repr(header))} "
                         f"(expected one of: {', '.join(FIELD_ALIASES['pattern'])})")
    result.ignored_columns = [h for h, f in zip(header, folded, strict=True)
                              if f not in _FIELD_OF and f not in PERSONAL_FIELDS]
    return rows


def json_lines(lines: Iterable[str | bytes], first: int = 1) -> Iterator[tuple[str, Row]]:
    """Our JSON Lines format: one entry object a line; a header line (with ``format``) is skipped."""
    for n, line in enumerate(lines, first):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            yield f"line {n}", EntryError(f"not valid JSON ({err})")
            continue
        except RecursionError:
            yield f"line {n}", EntryError("not valid JSON (nested too deeply)")
            continue
        if isinstance(row, dict) and "format" in row and not ({"pattern", "plate"} & set(row)):
            continue
        yield f"line {n}", row


def _json_rows(text: str) -> Iterator[tuple[str, Row]]:
    """A document {"format", "version", "entries": [...]} or a list, else JSON Lines."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        doc = None
    if isinstance(doc, dict) and "entries" in doc:
        doc = doc["entries"]
    if isinstance(doc, list):
        yield from ((f"entry {i}", row) for i, row in enumerate(doc, 1))
        return
    yield from json_lines(text.splitlines())


def parse_file_text(text: str | bytes, kind: str, cfg: HotlistConfig,
                    defaults: Mapping[str, Any] | None = None, on: date | None = None) -> ParseResult:
    """Parse a CSV (``kind='csv'``) or JSON hotlist file; raises EntryError if unusable as a whole.
    Rows expired ``on`` (default today) are skipped and counted: they could never alert."""
    if isinstance(text, bytes):
        text = decode_file(text)
    result = ParseResult()
    rows = _csv_rows(text, result) if kind == "csv" else _json_rows(text)
    return drop_expired(entries_from_rows(rows, cfg, defaults, result), on)


def drop_expired(result: ParseResult, on: date | None = None) -> ParseResult:
    kept = [e for e in result.entries if not expired(e.expires, on)]
    result.expired += len(result.entries) - len(kept)
    result.entries = kept
    return result


def expired(entry_expires: str, on: date | None = None) -> bool:
    return bool(entry_expires) and entry_expires < (on or datetime.now(UTC).date()).isoformat()
