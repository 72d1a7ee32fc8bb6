"""The policy and account commands end to end: `alprd ...` on a real database file, and on the department's
PostgreSQL (the same commands, fleet-wide)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import BACKENDS, drop_access_log_guards

from alprd.audit import AccessLog
from alprd.cli import main
from alprd.records import Read, iso
from alprd.store import Store

PW = {"boss": "boss password 1", "sup1": "sup1 password 1", "sup2": "sup2 password 1",
      "op1": "op1 password 11", "op2": "op2 password 11", "aud1": "aud1 password 1"}


class Cli:
    def __init__(self, tmp_path, monkeypatch, capsys, database_url: str | None = None):
        self.tmp = tmp_path
        self.db = tmp_path / "state" / "alprd.db"
        self.url = database_url
        self.config = tmp_path / "alprd.toml"
        self.config.write_text(f'[store]\nstate_dir = "{tmp_path / "state"}"\n'
                               + (f'database = "{database_url}"\n' if database_url else ""))
        self.mp = monkeypatch
        self.capsys = capsys
        for name in ("ALPRD_USER", "ALPRD_PASSWORD", "ALPRD_TOKEN", "ALPRD_NEW_PASSWORD", "ALPRD_CONFIG"):
            monkeypatch.delenv(name, raising=False)

    def __call__(self, *argv: str, user: str | None = None, new: str | None = None) -> tuple[int, str, str]:
        """Run as ``user`` (password from $ALPRD_PASSWORD); ``new`` is the new password for users add/passwd."""
        self.mp.delenv("ALPRD_USER", raising=False)
        for name, value in (("ALPRD_PASSWORD", PW.get(user or "")), ("ALPRD_NEW_PASSWORD", new)):
            if value is None:
                self.mp.delenv(name, raising=False)
            else:
                self.mp.setenv(name, value)
        args = ["-c", str(self.config), *argv] + (["--user", user] if user else [])
        self.capsys.readouterr()
        rc = main(args)
        out = self.capsys.readouterr()
        return rc, out.out, out.err

    def store(self) -> Store:
        if self.url:
            from alprd.store.postgres import PgStore

            return PgStore(self.url, self.tmp / "state" / "audit.key")
        return Store(self.db)


@pytest.fixture(params=BACKENDS)
def cli(request, tmp_path, monkeypatch, capsys) -> Cli:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    run = Cli(tmp_path, monkeypatch, capsys, url)
    assert run("users", "add", "boss", "--role", "administrator", "--trained-on", "2026-01-02", "--bootstrap",
               new=PW["boss"])[0] == 0
    for name, role, trained in (("sup1", "supervisor", "2026-01-03"), ("sup2", "supervisor", "2026-01-03"),
                                ("op1", "operator", "2026-01-04"), ("op2", "operator", None),
                                ("aud1", "auditor", "2026-01-05")):
        extra = ["--trained-on", trained] if trained else []
        rc, _, err = run("users", "add", name, "--role", role, *extra, user="boss", new=PW[name])
        assert rc == 0, err
    return run


@pytest.fixture
def reads(cli) -> list[str]:
    store = cli.store()
    now = datetime.now(UTC)
    ids = []
    for i, plate in enumerate(["ABC1234", "XBC1299", "ZZZ999"]):
        read = Read(plate, 0.9, (0.9,) * 7, "north", "dev1", ts=iso(now - timedelta(days=2 + i)),
                    lat=45.0, lon=-73.0, crop_jpeg=b"\xff\xd8crop" + plate.encode())
        store.insert_read(read)
        ids.append(read.id)
    store.close()
    return ids


def records(cli, **filters):
    store = cli.store()
    try:
        return AccessLog(store).show(**filters)
    finally:
        store.close()


# -- accounts --------------------------------------------------------------------------
def test_bootstrap_only_once_and_only_admins_add_users(cli):
    rc, _, err = cli("users", "add", "boss2", "--role", "administrator", "--bootstrap", new=PW["boss"])
    assert rc == 3 and "users exist already" in err
    rc, _, err = cli("users", "add", "op9", "--role", "operator", user="sup1", new=PW["op1"])
    assert rc == 3 and "needs role administrator" in err
    rc, out, _ = cli("users", "list", user="aud1")
    assert rc == 0 and "op2" in out and "trained NO" in out


def test_disabled_user_cannot_log_in_and_new_password_unlocks(cli):
    assert cli("users", "disable", "op1", user="boss")[0] == 0
    rc, _, err = cli("login", user="op1")
    assert rc == 3 and "disabled" in err
    assert cli("users", "enable", "op1", user="boss")[0] == 0
    assert cli("users", "passwd", "op1", user="op1", new="a brand new pass")[0] == 0
    cli.mp.setitem(PW, "op1", "a brand new pass")
    assert cli("login", user="op1")[0] == 0


def test_login_token_is_used_then_revoked(cli, reads):
    rc, token, _ = cli("login", user="op1")
    token = token.strip()
    assert rc == 0 and token.startswith("alprd_")
    rc, out, _ = cli("search", "--plate", "ABC1234", "--case", "C-1", "--token", token)
    assert rc == 0 and "ABC1234" in out
    assert cli("logout", "--token", token)[0] == 0
    rc, _, err = cli("search", "--plate", "ABC1234", "--case", "C-1", "--token", token)
    assert rc == 3 and "log in again" in err


# -- search ------------------------------------------------------------------------------
def test_search_refuses_without_case_or_detailed_reason(cli, reads):
    rc, _, err = cli("search", "--plate", "*BC12*", "--reason", "checking", user="op1")
    assert rc == 3 and "case/CFS number" in err
    rc, _, err = cli("search", "--plate", "*BC12*", "--case", "-", user="op1")
    assert rc == 3 and "--case '-' is not a case/CFS number" in err
    assert records(cli, action="search") == []


def test_untrained_user_is_refused_search(cli, reads):
    rc, out, err = cli("search", "--plate", "*BC12*", "--case", "C-1", user="op2")
    assert rc == 3 and "no training-completed date" in err and out == ""
    assert records(cli, action="search") == []
    assert records(cli, user="op2", action="login.refused")


def test_auditor_may_not_search(cli, reads):
    rc, _, err = cli("search", "--plate", "ABC*", "--case", "C-1", user="aud1")
    assert rc == 3 and "aud1 (auditor) may not search" in err


def test_search_writes_json_crops_and_the_access_record(cli, reads, tmp_path):
    rc, out, _ = cli("search", "--plate", "*BC12*", "--reason", "robbery suspect vehicle, witness partial",
                     "--json", "--crops", str(tmp_path / "crops"), user="op1")
    assert rc == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["plate"] for r in rows] == ["ABC1234", "XBC1299"]
    assert all((tmp_path / "crops" / f"{r['id']}.jpg").read_bytes().startswith(b"\xff\xd8") for r in rows)
    rec = records(cli, action="search")[-1]
    assert (rec.username, rec.records, rec.reason) == ("op1", 2, "robbery suspect vehicle, witness partial")
    assert json.loads(rec.query)["plate"] == "*BC12*"
    assert rec.ts.endswith("Z")


def test_search_json_gives_lists_not_json_text(cli, reads):
    rc, out, _ = cli("search", "--plate", "ABC1234", "--case", "C-1", "--json", user="op1")
    assert rc == 0
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["char_confidences"] == [0.9] * 7 and row["box"] is None and row["gps_stale"] is False


def test_search_bad_input_is_a_clear_error(cli, reads):
    rc, _, err = cli("search", "--plate", "AB[C]", "--case", "C-1", user="op1")
    assert rc == 2 and "plate pattern" in err
    rc, _, err = cli("search", "--from", "yesterday", "--case", "C-1", user="op1")
    assert rc == 2 and "YYYY-MM-DD" in err


# -- holds, releases, exports ---------------------------------------------------------------
def test_hold_release_request_and_export_flow(cli, reads, tmp_path):
    rc, out, err = cli("hold", "add", "--plate", "*BC12*", "--case", "C-42", "--reason", "armed robbery getaway",
                       user="op1")
    assert rc == 0 and "2 read(s) held for case C-42" in out, err
    rc, _, err = cli("hold", "add", "--plate", "*BC12*", "--limit", "2", "--case", "C-43", "--reason",
                     "too many to hold at once", user="op1")
    assert rc == 2 and "nothing held" in err
    rc, _, err = cli("hold", "add", "--read", reads[2], "--case", "C-42", user="op1")
    assert rc == 2 and "both --case and --reason" in err

    rc, _, err = cli("export", "--case", "C-42", "--to", str(tmp_path / "usb1"), user="op1")
    assert rc == 0, err
    rc, out, _ = cli("export", "verify", str(tmp_path / "usb1"))
    assert rc == 0 and "bundle intact" in out and re.search(r"matches this (unit|server)'s access log", out)

    assert cli("release", "request", "--agency", "State Police", "--requester", "Tpr 4411",
               "--purpose", "robbery series", "--case", "C-42", user="op1")[0] == 0
    rc, _, err = cli("export", "--release", "1", "--to", str(tmp_path / "usb2"), user="op1")
    assert rc == 2 and "is pending" in err
    rc, _, err = cli("release", "approve", "1", "--note", "ok", user="op1")
    assert rc == 3 and "needs role supervisor" in err
    assert cli("release", "approve", "1", "--note", "court order on file", user="sup1")[0] == 0
    rc, _, err = cli("export", "--release", "1", "--to", str(tmp_path / "usb2"), user="op1")
    assert rc == 0, err
    bundle = json.loads((tmp_path / "usb2" / "reads.json").read_text())
    assert bundle["export"]["release"]["agency"] == "State Police"
    assert len(bundle["reads"]) == 2

    (tmp_path / "usb2" / "reads.csv").write_text("tampered")
    rc, out, _ = cli("export", "verify", str(tmp_path / "usb2"))
    assert rc == 1 and "reads.csv: changed" in out
    rc, out, _ = cli("release", "list", user="aud1")
    assert rc == 0 and "approved" in out and "State Police" in out


def test_the_department_checks_a_bundle_with_the_units_public_key(cli, reads, tmp_path):
    rc, out, _ = cli("keys", "init")
    assert rc == 0 and "access-log secret" in out and "(already there)" in out  # the log was keyed by users add
    assert (tmp_path / "state" / "signing.key").stat().st_mode & 0o777 == 0o600
    rc, _, err = cli("keys", "export-public", "--out", str(tmp_path / "unit.pem"))
    assert rc == 0 and "public key" in err
    assert cli("hold", "add", "--read", reads[0], "--case", "C-7", "--reason", "stolen car recovered",
               user="op1")[0] == 0
    assert cli("export", "--case", "C-7", "--to", str(tmp_path / "usb"), user="op1")[0] == 0
    away = tmp_path / "department.toml"  # no database, no keys: a desk at headquarters
    away.write_text(f'[store]\nstate_dir = "{tmp_path / "hq"}"\n')
    for extra, verdict in (([], "NOT shown to come from the unit"), (["--public-key", str(tmp_path / "unit.pem")],
                                                                     "bundle intact")):
        rc = main(["-c", str(away), "export", "verify", str(tmp_path / "usb"), *extra])
        out = cli.capsys.readouterr().out
        assert rc == 0 and verdict in out and "not checked: the unit's access log" in out
    rc = main(["-c", str(away), "export", "verify", str(tmp_path / "usb"), "--public-key", str(tmp_path / "nope")])
    assert rc == 2 and "no such file" in cli.capsys.readouterr().err


def test_purge_by_hand_keeps_held_reads(cli, reads):
    store = cli.store()
    store.mark_uploaded(reads)
    with store.transaction() as db:
        db.execute("UPDATE reads SET ts = '2020-01-01T00:00:00.000000Z'")
    store.close()
    assert cli("hold", "add", "--read", reads[0], "--case", "C-1", "--reason", "kept for court", user="op1")[0] == 0
    rc, _, err = cli("purge", user="op1")
    assert rc == 3 and "needs role supervisor" in err
    rc, out, _ = cli("purge", user="sup1")
    assert rc == 0 and "purged 2 read(s)" in out and "kept 1 under evidence hold" in out
    assert [(r.username, r.records) for r in records(cli, action="purge")] == [("sup1", 2)]
    store = cli.store()
    assert [r["id"] for r in store.query("SELECT id FROM reads")] == [reads[0]]
    store.close()


# -- audit and report -----------------------------------------------------------------------
def test_audit_verify_names_the_tampered_record(cli, reads):
    cli("search", "--plate", "ABC*", "--case", "C-1", user="op1")
    rc, out, _ = cli("audit", "verify", user="aud1")
    assert rc == 0 and "chain intact" in out
    store = cli.store()
    seq = AccessLog(store).show(action="search")[0].seq
    drop_access_log_guards(store)
    store.db.execute("UPDATE access_log SET case_number = 'C-999' WHERE seq = ?", [seq])
    store.close()
    rc, out, _ = cli("audit", "verify", user="aud1")
    assert rc == 1 and f"record {seq} was edited" in out


def test_audit_verify_checks_before_its_login_writes_and_catches_a_cut_tail(cli, reads):
    cli("search", "--plate", "ABC*", "--case", "C-1", user="op1")
    rc, out, _ = cli("audit", "verify", user="aud1")
    assert rc == 0 and "chain intact" in out and "keyed; head anchored at record" in out
    assert "department's copy of the head: not compared" in out
    verify = records(cli, action="audit.verify")[-1]
    assert verify.records == verify.seq - 2  # counted before its own login record was written
    store = cli.store()
    last = AccessLog(store).head()["seq"]
    drop_access_log_guards(store)
    store.db.execute("DELETE FROM access_log WHERE seq > ?", [last - 3])
    store.db.execute("UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM access_log WHERE seq = ?)",
                     [last - 3, last - 3])
    store.close()
    rc, out, _ = cli("audit", "verify", user="aud1")
    assert rc == 1 and f"record(s) {last - 2}..{last} deleted from the end" in out


def test_audit_verify_compares_the_departments_head(cli, reads):
    store = cli.store()
    head = AccessLog(store).head()
    store.close()
    rc, out, _ = cli("audit", "verify", "--head", f"{head['seq']}:{head['mac']}", user="aud1")
    assert rc == 0 and "department's copy of the head: compared" in out
    rc, out, _ = cli("audit", "verify", "--head", f"{head['seq']}:{'0' * 64}", user="aud1")
    assert rc == 1 and f"record {head['seq']} is not the one the department saw" in out
    rc, _, err = cli("audit", "verify", "--head", "12", user="aud1")
    assert rc == 2 and "write SEQ:MAC" in err


def test_audit_show_filters(cli, reads):
    cli("search", "--plate", "ABC*", "--case", "C-1", user="op1")
    rc, out, _ = cli("audit", "show", "--by", "op1", "--action", "search", "--json", user="sup1")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(rows) == 1 and rows[0]["case_number"] == "C-1"
    rc, out, _ = cli("audit", "show", "--until", "2020-01-01", user="sup1")
    assert rc == 0 and out == ""
    rc, _, err = cli("audit", "show", user="op1")
    assert rc == 3 and "op1 (operator) may not audit.show" in err


def test_annual_report_files(cli, reads, tmp_path):
    cli("search", "--plate", "ABC*", "--case", "C-1", user="op1")
    year = datetime.now(UTC).year
    rc, out, err = cli("report", "--year", str(year), "--out", str(tmp_path / "rep"), user="aud1")
    assert rc == 0 and "report.md" in out, err
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"ALPR usage report {year}-01-01" in md and "| op1 | case C-1 | 1 |" in md
    assert (tmp_path / "rep" / "report.csv").read_text().startswith("section,item,value")
    assert (tmp_path / "rep" / "chart.png").stat().st_size > 1000
    rc, _, err = cli("report", "--year", str(year), user="op1")
    assert rc == 3 and "needs role auditor" in err
