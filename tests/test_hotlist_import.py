"""Hotlist rows and files: policy checks, bad rows skipped with their line, atomic swaps."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from datetime import date

import pytest
from conftest import BACKENDS, open_backend
from test_hotlist_alerts import cli  # noqa: F401 - the logged-in command line fixture

from alprd.config import HotlistConfig
from alprd.hotlist import repository
from alprd.hotlist.entries import Entry, EntryError, make_entry, parse_file_text
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.ncic import parse_extract
from alprd.store import Store

CFG = HotlistConfig()

NCIC_CSV = """LIC,LIS,FILE,OCA,DTE,EXP,MIS,VIN
ABC123,CO,Stolen Vehicle,CASE-1,20260101,,blue sedan,1HGCM82633A004352
AB?12*,CO,Felony Vehicle,CASE-2,2026-02-01,2099-01-01,partial plate from robbery,
XYZ 789,WY,Parking,CASE-3,20260101,,,
BAD$$1,CO,Stolen Vehicle,CASE-4,20260101,,,
QRS456,CO,Stolen Vehicle,CASE-5,20260101
DEF456,CO,Wanted Person,CASE-6,20260101,,,
"""


def test_ncic_csv_loads_good_rows_and_names_bad_lines():
    result = parse_file_text(NCIC_CSV, "csv", CFG)
    assert [e.pattern for e in result.entries] == ["ABC123", "AB?12*", "DEF456"]
    first = result.entries[0]
    assert (first.state, first.category, first.case_number, first.entered, first.note) == (
        "CO", "stolen_vehicle", "CASE-1", "2026-01-01", "blue sedan")
    errors = {e.where: e.message for e in result.errors}
    assert set(errors) == {"line 4", "line 5", "line 6"}
    assert "denied by policy" in errors["line 4"]
    assert "characters other than" in errors["line 5"]
    assert "wrong number of fields" in errors["line 6"]
    assert result.ignored_columns == ["VIN"]


def test_rows_with_personal_data_are_refused_and_nothing_else_is_lost():
    text = ("plate,category,name,dob,sex\n"
            "AAA111,stolen_vehicle,,,\n"
            "BBB222,wanted_person,John Doe,1980-01-01,M\n"
            "CCC333,stolen_plate,,,\n")
    result = parse_file_text(text, "csv", CFG)
    assert [e.pattern for e in result.entries] == ["AAA111", "CCC333"]
    (err,) = result.errors
    assert err.where == "line 3"
    assert "personal data (date of birth, name, sex)" in err.message


def test_json_lines_and_documents():
    lines = ('{"format": "alprd-hotlist/1"}\n'
             '{"pattern": "ABC123", "category": "bolo", "priority": 2}\n'
             'not json\n'
             '{"pattern": "DEF456", "category": "unknown_kind"}\n')
    result = parse_file_text(lines, "json", CFG)
    assert [(e.pattern, e.priority) for e in result.entries] == [("ABC123", 2)]
    assert [str(e).split(":")[0] for e in result.errors] == ["line 3", "line 4"]
    doc = '{"format": "alprd-hotlist/1", "entries": [{"plate": "abc-123", "category": "BOLO"}, 5]}'
    result = parse_file_text(doc, "json", CFG)
    assert [e.pattern for e in result.entries] == ["ABC123"]
    assert result.errors[0].where == "entry 2"


def test_rows_the_csv_module_cannot_read_are_skipped_by_line():
    text = ("plate,category\n"
            "AAA111,bolo\n"
            + "B" * 200_000 + ",bolo\n"  # past the csv module's field limit
            "CCC333,bolo\n"
            "D\x00D444,bolo\n"
            '"EEE555,bolo\n'  # a quote never closed: swallows the rest
            "FFF666,bolo\n")
    result = parse_file_text(text.encode(), "csv", CFG)
    assert [e.pattern for e in result.entries] == ["AAA111", "CCC333"]
    errors = {e.where: e.message for e in result.errors}
    assert set(errors) == {"line 3", "line 5", "lines 6-7"}
    assert errors["line 3"].startswith("not valid CSV (field larger than field limit")
    assert "characters other than" in errors["line 5"]
    assert "quote left open" in errors["lines 6-7"]
    assert all(len(e) < 300 for e in errors.values())


@pytest.mark.parametrize("data, problem", [
    (b"plate,category\nAAA111,bolo\nCAF\xc9,bolo\n", "line 3 is not UTF-8 text (byte 0xC9)"),
    (b"\xff\xfep\x00l\x00", "line 1 is not UTF-8"),  # UTF-16
])
def test_a_file_that_is_not_utf8_is_refused_naming_the_line(data, problem):
    with pytest.raises(EntryError, match=re.escape(problem) + ".*iconv"):
        parse_file_text(data, "csv", CFG)


def test_json_nested_too_deeply_and_huge_numbers_are_row_errors():
    deep = "[" * 100_000
    result = parse_file_text(f'{deep}\n{{"plate": "ABC123", "category": "bolo", "priority": 1e999}}\n'
                             '{"plate": "DEF456", "category": "bolo"}\n', "json", CFG)
    assert [e.pattern for e in result.entries] == ["DEF456"]
    assert [str(e) for e in result.errors] == ["line 1: not valid JSON (nested too deeply)",
                                               "line 2: priority inf is not a whole number"]


def test_a_file_without_a_plate_column_is_refused_as_a_whole():
    with pytest.raises(EntryError, match="no plate column"):
        parse_file_text("make,model\nFord,Focus\n", "csv", CFG)


@pytest.mark.parametrize("row, problem", [
    ({"plate": "*1", "category": "bolo"}, "at least 3 known characters"),
    ({"plate": "ABC123", "category": "bolo", "priority": "11"}, "outside 1..9"),
    ({"plate": "ABC123", "category": "bolo", "expires": "next week"}, "expiry date"),
    ({"plate": "", "category": "bolo"}, "no plate"),
])
def test_bad_rows_say_what_is_wrong(row, problem):
    with pytest.raises(EntryError, match=problem):
        make_entry(row, CFG)


def test_runs_of_stars_are_stored_as_one():
    assert make_entry({"plate": "**" * 30 + "abc", "category": "bolo"}, CFG).pattern == "*ABC"


def test_denied_categories_come_from_the_config():
    cfg = HotlistConfig(denied_categories=("bolo",))
    with pytest.raises(EntryError, match="denied by policy"):
        make_entry({"plate": "ABC123", "category": "BOLO"}, cfg)


@pytest.fixture
def store(request, tmp_path):
    """SQLite; or, for a test parametrized with ``indirect=True``, each backend (the department's list
    lives in its server's database)."""
    s = open_backend(request, tmp_path) if hasattr(request, "param") else Store(tmp_path / "alprd.db")
    yield s
    s.close()


on_both = pytest.mark.parametrize("store", BACKENDS, indirect=True)


@on_both
def test_department_list_swap_keeps_officer_entries_and_bumps_revision(store):
    officer = Entry("OFF111", "bolo", officer_entered=True)
    repository.add_officer_entry(store, officer)
    repository.replace_department_list(store, [Entry("ABC123", "stolen_vehicle")], "test", version=3)
    repository.replace_department_list(store, [Entry("NEW999", "stolen_plate")], "test")
    pats = {r["pattern"] for r in repository.list_entries(store, officer_only=False)}
    assert pats == {"OFF111", "NEW999"}
    m = repository.meta(store)
    assert (m.version, m.revision, m.entries) == (4, 3, 2)  # a changed list takes the next version
    assert repository.remove_officer_entries(store, "OFF111") == 1
    assert repository.remove_officer_entries(store, "NEW999") == 0  # department entries are not officers' to remove


def test_expired_entries_never_match(store):
    repository.replace_department_list(store, [Entry("OLD111", "bolo", expires="2000-01-01"),
                                               Entry("NOW222", "bolo", expires="2999-01-01")], "test")
    hot = Hotlist(store, CFG)
    hot.reload()
    assert hot.match("OLD111") == []
    assert [m.entry["pattern"] for m in hot.match("NOW222")] == ["NOW222"]


def test_swap_under_concurrent_reads_never_shows_half_a_list(store, monkeypatch):
    """Readers in memory and in SQLite see list A or list B whole while swaps run."""
    monkeypatch.setattr(repository, "CHUNK_ROWS", 100)
    size = 600  # each list is written in 12 chunks
    lists = {name: [Entry("SAME111", "bolo", source=name, case_number=str(i)) for i in range(size)]
                    + [Entry(f"{name}{i:04d}", "bolo", source=name) for i in range(size)]
             for name in ("AAA", "BBB")}
    repository.replace_department_list(store, lists["AAA"], "AAA")
    hot = Hotlist(store, CFG)
    hot.reload()
    stop = threading.Event()
    problems: list[str] = []

    def match_reader():
        while not stop.is_set():
            index = hot.index
            own = {p[:3] for p in index.patterns if p != "SAME111"}
            if len(own) != 1 or len(index) != size + 1:
                problems.append(f"index mixes lists: {own}, {len(index)} patterns")
            time.sleep(0)  # let the writer have the GIL between looks

    def sql_reader():
        other = Store(store.path)  # another connection, as another process would have
        while not stop.is_set():
            rows = repository.list_entries(other, officer_only=False, limit=10 * size)
            counts = Counter(r["source"] for r in rows)
            if len(counts) != 1 or set(counts.values()) != {2 * size}:
                problems.append(f"table mixes lists: {counts}")
            time.sleep(0)
        other.close()

    readers = [threading.Thread(target=match_reader), threading.Thread(target=sql_reader)]
    for t in readers:
        t.start()
    try:
        for i in range(12):
            name = "BBB" if i % 2 == 0 else "AAA"
            repository.replace_department_list(store, lists[name], name)
            assert hot.reload()
            matches = hot.match("SAME111")
            assert len(matches) == size and {m.entry["source"] for m in matches} == {name}
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert problems == []


@on_both
def test_a_load_that_fails_half_way_leaves_the_old_list(store, monkeypatch):
    monkeypatch.setattr(repository, "CHUNK_ROWS", 100)
    repository.replace_department_list(store, [Entry("OLD111", "bolo")], "old", version=1)

    def broken_feed():
        for i in range(250):
            yield Entry(f"NEW{i:04d}", "bolo")
        raise OSError("disk full")

    with pytest.raises(OSError):
        repository.replace_department_list(store, broken_feed(), "new", version=2)
    assert [r["pattern"] for r in repository.list_entries(store, officer_only=False)] == ["OLD111"]
    assert store.query("select count(*) as n from hotlist")[0]["n"] == 1  # the partial load is gone
    assert repository.meta(store).version == 1
    repository.replace_department_list(store, [Entry("NEW222", "bolo")], "new", version=3)
    assert store.query("select pattern from hotlist") == [{"pattern": "NEW222"}]


@on_both
def test_a_change_made_here_takes_the_next_version_and_no_change_keeps_it(store):
    """Issue 22 (2): an import that changed the list kept its version, so units took it for the old one."""
    first = [Entry("ABC123", "stolen_vehicle", entered="2026-11-01"), Entry("DEF456", "stolen_plate")]
    change = repository.replace_department_list(store, first, "a")
    assert (change.version, change.added, change.removed, change.unchanged) == (1, 2, 0, 0)
    change = repository.replace_department_list(store, list(first), "a")
    assert (change.changed, change.version, change.unchanged) == (False, 1, 2)
    assert store.query("select count(*) as n from hotlist")[0]["n"] == 2  # the identical copy was dropped
    change = repository.replace_department_list(store, [first[0], Entry("DEF456", "stolen_plate", priority=1)], "a")
    assert (change.version, change.previous, change.added, change.removed, change.unchanged) == (2, 1, 1, 1, 1)
    assert repository.changed_patterns(store, 1) == ["DEF456"]
    m = repository.meta(store)
    assert m.list_id and m.changes_since == 1  # its first version: deltas start from it
    with pytest.raises(ValueError, match="versions only go forward"):
        repository.replace_department_list(store, first, "a", version=2)
    assert repository.replace_department_list(store, first, "a", version=9).version == 9
    assert repository.meta(store).changes_since == 9  # a jump: the next publish sends the whole list


def test_a_unit_that_imports_its_own_list_leaves_the_departments(store):
    """After a local import, a unit's list is its own: the department's deltas no longer apply to it."""
    repository.install_snapshot(store, [Entry("ABC123", "bolo")], "sync", 5, "department-list")
    assert repository.replace_department_list(store, [Entry("OWN111", "bolo")], "import").version == 6
    m = repository.meta(store)
    assert m.list_id != "department-list" and m.changes_since == 6


# -- NCIC/state extracts ---------------------------------------------------------------
NCIC_HEADER = ["FILE", "LIC", "LIS", "LIT", "LIY", "VYR", "VMA", "VMO", "VCO", "NIC", "ORI", "OCA", "DTE", "EXP",
               "MIS", "NAM", "DOB", "SEX", "RAC"]


def ncic_row(fields: dict[str, str]) -> str:
    return "|".join({"LIS": "CO", "ORI": "CO0010000", **fields}.get(code, "") for code in NCIC_HEADER)


PERSON = {"NAM": "DOE, JOHN", "DOB": "19800101", "SEX": "M", "RAC": "W"}
EXTRACT = "\n".join(["|".join(NCIC_HEADER), *(ncic_row(r) for r in [
    {"FILE": "V", "LIC": "ABC 1234", "LIT": "PC", "LIY": "2027", "VYR": "2019", "VMA": "HOND", "VMO": "CIV",
     "VCO": "BLU", "NIC": "V123456789", "OCA": "24-001234", "DTE": "20261101"},
    {"FILE": "LP", "LIC": "XYZ999", "LIS": "WY", "NIC": "L000000001", "DTE": "20261102", "EXP": "20991231"},
    {"FILE": "F", "LIC": "FEL777", "VCO": "RED", "NIC": "V000000777", "DTE": "2026-11-03", "MIS": "ROBBERY VEHICLE"},
    dict(FILE="W", LIC="WNT111", NIC="W000000111", DTE="20261104", MIS="ARMED", **PERSON),
    dict(FILE="W", NIC="W000000112", DTE="20261104", **PERSON),
    dict(FILE="MP", LIC="KID222", VMA="TOYT", NIC="M000000222", DTE="20261120", MIS="AMBER ALERT - ABDUCTION",
         **PERSON),
    {"FILE": "MP", "LIC": "MIS333", "NIC": "M000000333", "DTE": "20261120"},
    dict(FILE="PO", LIC="PRO444", NIC="H000000444", DTE="20261120", **PERSON),
    {"FILE": "V", "LIC": "OLD555", "NIC": "V000000555", "DTE": "20200101", "EXP": "20201231"},
    {"FILE": "V", "LIC": "BAD!!", "NIC": "V000000556", "DTE": "20261101"},
    {"FILE": "V", "LIC": "NODTE1", "NIC": "V000000557"},
    {"FILE": "9", "LIC": "JUNK11", "NIC": "V000000558", "DTE": "20261101"},
]), "V|SHORT1|CO", ""])


def test_an_ncic_extract_maps_file_codes_skips_and_counts_and_keeps_no_personal_data():
    cfg = HotlistConfig(priorities={"amber_alert": 1, "wanted_person": 2, "stolen_plate": 4})
    result = parse_extract(EXTRACT, cfg, on=date(2026, 12, 2))
    assert [(e.pattern, e.category, e.priority) for e in result.entries] == [
        ("ABC1234", "stolen_vehicle", 5), ("XYZ999", "stolen_plate", 4), ("FEL777", "felony_vehicle", 5),
        ("WNT111", "wanted_person", 2), ("KID222", "amber_alert", 1), ("MIS333", "missing_person", 5)]
    first = result.entries[0]
    assert (first.state, first.case_number, first.source, first.entered, first.expires) == (
        "CO", "V123456789", "CO0010000", "2026-11-01", "")
    assert first.note == "plate type PC year 2027; 2019 HOND CIV BLU; OCA 24-001234"
    assert (result.expired, result.other_files, result.without_plate) == (1, {"PO": 1}, 1)
    assert {e.where: e.message.split(" (")[0] for e in result.errors} == {
        "line 11": "plate 'BAD!!' has characters other than A-Z, 0-9, ? and *",
        "line 12": "no entry date",
        "line 13": "file code '9' is not an NCIC file code",
        "line 14": "wrong number of fields",
    }
    assert result.personal_columns == ["NAM", "DOB", "SEX", "RAC"] and result.ignored_columns == []
    stored = json.dumps([e.to_json() for e in result.entries])
    for personal in ("DOE", "ROE", "1980", "ARMED", "ABDUCTION"):  # names, births, MIS free text: never kept
        assert personal not in stored


@pytest.mark.parametrize("header, delimiter", [("FILE,LIC,NIC,DTE", ","), ("FILE\tLIC\tNIC\tDTE", "\t")])
def test_an_extract_may_be_comma_or_tab_separated(header, delimiter):
    row = delimiter.join(["LP", "ABC123", "L1", "20261101"])
    assert [e.pattern for e in parse_extract(f"{header}\n{row}\n", CFG).entries] == ["ABC123"]


def test_a_file_that_is_not_an_ncic_extract_is_refused_whole():
    with pytest.raises(EntryError, match="not an NCIC extract: .* lacks FILE, LIC, NIC, DTE"):
        parse_extract("plate,category\nABC123,bolo\n", CFG)


def test_the_cli_prints_what_an_extract_changed(cli, tmp_path, capsys):  # noqa: F811
    f = tmp_path / "ncic-20261202.txt"
    f.write_text(EXTRACT)
    assert cli("hotlist", "import", str(f), "--format", "ncic", "--user", "sup1") == 0
    captured = capsys.readouterr()
    assert "line 11: plate 'BAD!!'" in captured.err and "Traceback" not in captured.err
    lines = captured.out.splitlines()
    assert lines[0].endswith("version 1 (was 0): 6 added, 0 removed, 0 unchanged")
    assert lines[1] == ("  skipped: 1 expired, 4 malformed, 1 of NCIC files not imported (PO 1), "
                        "1 person records without a vehicle")
    assert lines[2] == "  personal data dropped, never stored: NAM, DOB, SEX, RAC"
    f.write_text(EXTRACT.replace("V|ABC 1234|", "V|ABC 1235|"))
    assert cli("hotlist", "import", str(f), "--format", "ncic", "--user", "sup1", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in ("version", "previous_version", "added", "removed", "unchanged", "expired_skipped",
                                 "malformed")} == {"version": 2, "previous_version": 1, "added": 1, "removed": 1,
                                                   "unchanged": 5, "expired_skipped": 1, "malformed": 4}
    assert info["personal_columns_dropped"] == ["NAM", "DOB", "SEX", "RAC"]


@pytest.mark.parametrize("priorities, problem", [
    ({"parking_ticket": 1}, "'parking_ticket' is not one of the categories"),
    ({"bolo": 0}, "bolo = 0 is outside 1..9"),
])
def test_priorities_name_configured_categories_within_range(priorities, problem):
    with pytest.raises(ValueError, match=problem):
        HotlistConfig(priorities=priorities)
