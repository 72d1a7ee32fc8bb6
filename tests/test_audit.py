"""Access log hash chain, users, login lockout, sessions and the authorize gate."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import BACKENDS, open_backend, reopen
from conftest import drop_access_log_guards as drop_guards
from hypothesis import given, settings
from hypothesis import strategies as st

from alprd.audit import AccessLog, find_problems, record_hash
from alprd.audit.accesslog import GENESIS
from alprd.auth import AuthError, Role, Sessions, Users, check_purpose
from alprd.auth.users import may_bootstrap
from alprd.cli.common import authorize
from alprd.config import Config, PolicyConfig
from alprd.store import Store


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """The rules hold on a unit's SQLite and on the department's PostgreSQL alike."""
    s = open_backend(request, tmp_path)
    yield s
    s.close()

PASSWORD = "correct horse battery"


def ns(**kw) -> argparse.Namespace:
    base = {"user": None, "token": None, "case": None, "reason": None}
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture
def log(store) -> AccessLog:
    log = AccessLog(store)
    for i in range(6):
        log.record(f"user{i % 2}", "search", {"plate": f"AB{i}*"}, case_number=f"C-{i}", records=i)
    return log


@pytest.fixture
def users(store) -> Users:
    users = Users(store, PolicyConfig())
    users.add("op1", "operator", PASSWORD, "2026-01-15", by=None)
    users.add("sup1", "supervisor", PASSWORD, "2026-01-15", by=None)
    users.add("new1", "operator", PASSWORD, None, by=None)
    return users


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv("ALPRD_PASSWORD", PASSWORD)
    for name in ("ALPRD_TOKEN", "ALPRD_USER"):
        monkeypatch.delenv(name, raising=False)


# -- hash chain -------------------------------------------------------------------
def test_intact_log_verifies_and_links(log):
    assert log.verify() == []
    rows = log.show()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in pairwise(rows))


def test_log_is_append_only_while_triggers_stand(log, store):
    with pytest.raises(store.integrity_error, match="append-only"):
        store.db.execute("UPDATE access_log SET records = 0 WHERE seq = 2")
    with pytest.raises(store.integrity_error, match="append-only"):
        store.db.execute("DELETE FROM access_log WHERE seq = 2")


def test_edited_record_is_named(log, store):
    drop_guards(store)
    store.db.execute("UPDATE access_log SET records = 0 WHERE seq = 3")
    problems = log.verify()
    assert [(p.seq, p.kind) for p in problems] == [(3, "edited")]
    assert "record 3 was edited" in str(problems[0])


def test_edited_and_rehashed_record_breaks_the_next_link(log, store):
    drop_guards(store)
    row = store.query("SELECT * FROM access_log WHERE seq = 3")[0]
    row["reason"] = "innocent looking"
    store.db.execute("UPDATE access_log SET reason = ?, hash = ? WHERE seq = 3",
                     [row["reason"], record_hash(row["prev_hash"], row)])
    problems = log.verify()
    assert [(p.seq, p.kind) for p in problems] == [(3, "forged"), (4, "broken")]
    assert "record 3: the MAC is not this unit's" in str(problems[0])
    assert "record 3 was replaced or re-hashed" in str(problems[1])


def test_deleted_record_is_named(log, store):
    drop_guards(store)
    store.db.execute("DELETE FROM access_log WHERE seq = 4")
    problems = log.verify()
    assert [(p.seq, p.kind) for p in problems] == [(4, "deleted")]
    assert "record(s) 4 deleted" in str(problems[0])


def test_deleted_tail_is_caught_by_the_head_anchor(log, store):
    drop_guards(store)
    store.db.execute("DELETE FROM access_log WHERE seq >= 5")
    problems = log.verify()
    assert [(p.seq, p.kind) for p in problems] == [(5, "deleted")]
    assert "5..6 deleted from the end" in str(problems[0])


def test_reordered_records_are_named(log, store):
    drop_guards(store)
    store.db.execute("UPDATE access_log SET seq = -1 WHERE seq = 2")
    store.db.execute("UPDATE access_log SET seq = 2 WHERE seq = 3")
    store.db.execute("UPDATE access_log SET seq = 3 WHERE seq = -1")
    kinds = {(p.seq, p.kind) for p in log.verify()}
    assert (2, "reordered") in kinds and (3, "reordered") in kinds
    assert all(kind != "edited" for _, kind in kinds)


def rehash_plainly(store, keep_mac: bool) -> None:
    """Rebuild the whole chain with plain SHA-256, as anyone with the file but not the secret can."""
    drop_guards(store)
    prev = GENESIS
    for row in store.query("SELECT * FROM access_log ORDER BY seq"):
        digest = record_hash(prev, {**row, "reason": "nothing to see"})
        store.db.execute("UPDATE access_log SET prev_hash = ?, hash = ?, reason = 'nothing to see', "
                         f"mac = {'mac' if keep_mac else 'NULL'} WHERE seq = ?", [prev, digest, row["seq"]])
        prev = digest
    store.db.execute("UPDATE audit_head SET hash = ?", [prev])


def test_records_are_keyed_by_a_secret_outside_the_database(log, store, tmp_path):
    assert store.audit_secret == tmp_path / "audit.key"  # beside the file (a unit), or in state_dir
    assert store.audit_secret.stat().st_mode & 0o777 == 0o600
    assert len(store.audit_secret.read_bytes()) == 32
    assert all(r.mac and len(r.mac) == 64 for r in log.show())
    check = log.check()
    assert check.problems == [] and check.keyed_from == 1 and check.anchored_at == 6
    assert check.coverage() == "records 1..6 keyed; head anchored at record 6"


@pytest.mark.parametrize("keep_mac", [True, False])
def test_a_chain_rehashed_without_the_secret_is_caught(log, store, keep_mac):
    rehash_plainly(store, keep_mac)
    problems = log.verify()
    assert find_problems(store.query("SELECT * FROM access_log ORDER BY seq"), None) == []  # the plain chain holds
    assert [(p.seq, p.kind) for p in problems] == [(1, "forged" if keep_mac else "unkeyed"), (6, "edited")]
    assert "records 1..6" in str(problems[0]) and "the head anchor outside the database" in str(problems[1])


def test_cutting_the_tail_and_fixing_the_head_row_is_caught_by_the_anchor(log, store):
    drop_guards(store)
    store.db.execute("DELETE FROM access_log WHERE seq >= 5")
    store.db.execute("UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM access_log WHERE seq = 4)")
    problems = log.verify()
    assert [(p.seq, p.kind) for p in problems] == [(5, "deleted")]
    assert "head anchor outside the database is at record 6" in str(problems[0])
    log.record("op1", "login")  # the next logins must not move the anchor back over the cut
    assert [(p.seq, p.kind) for p in log.verify()] == [(6, "deleted")]
    log.record("op1", "login")
    assert [(p.seq, p.kind) for p in log.verify()] == [(6, "edited")]


def test_a_wiped_table_is_caught_by_the_anchor(log, store):
    drop_guards(store)
    store.db.execute("DELETE FROM access_log")
    store.db.execute("DELETE FROM audit_head")
    assert [(p.seq, p.kind) for p in log.verify()] == [(1, "deleted")]


def test_a_deleted_or_forged_anchor_is_reported(log, store):
    anchor = log.anchor_path.read_bytes()
    log.anchor_path.unlink()
    assert [p.kind for p in log.verify()] == ["anchor"]
    log.record("op1", "login")  # nor does the next record quietly bring a new one
    assert [p.kind for p in log.verify()] == ["anchor"]
    log.anchor_path.write_bytes(anchor.replace(b'"seq": 6', b'"seq": 60'))
    assert "altered or replaced (not signed by this unit's secret)" in str(log.verify()[0])


def test_a_log_replaced_with_its_secret_and_anchor_is_caught_by_the_departments_head(log, store):
    head = log.head()
    assert head["seq"] == 6 and head["mac"] == log.show()[-1].mac
    assert log.check(reported=(head["seq"], head["mac"])).problems == []
    drop_guards(store)
    store.db.execute("DELETE FROM access_log")
    store.db.execute("DELETE FROM audit_head")
    log.secret_path.unlink()
    log.anchor_path.unlink()
    assert log.verify() == []  # on the unit alone, a fresh log
    problems = log.check(reported=(head["seq"], head["mac"])).problems
    assert [(p.seq, p.kind) for p in problems] == [(6, "deleted")] and "the department saw" in str(problems[0])


def test_a_missing_secret_stops_recording_and_is_reported(log, store):
    log.secret_path.unlink()
    with pytest.raises(ValueError, match="secret is missing, but the log was keyed with it from record 1"):
        log.record("op1", "login")
    assert [p.kind for p in log.verify()] == ["unverifiable"]


def test_an_unreadable_anchor_is_a_clear_error(log, store, monkeypatch):
    real = Path.read_bytes

    def read_bytes(path: Path) -> bytes:  # as for another user's file (chmod does not stop root, who runs CI)
        if path == log.anchor_path:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    for attempt in (log.verify, lambda: log.record("op1", "login")):
        with pytest.raises(ValueError, match="head anchor cannot be read .* run alprd as the alprd user"):
            attempt()


def test_an_old_unkeyed_log_verifies_and_is_keyed_from_its_next_record(log, store):
    drop_guards(store)
    store.db.execute("UPDATE access_log SET mac = NULL")  # as written before audit_0002_keyed
    log.secret_path.unlink()
    log.anchor_path.unlink()
    check = log.check()
    assert check.problems == [] and check.coverage().startswith("no record is keyed yet")
    log.record("op1", "login")
    check = log.check()
    assert check.problems == []
    assert check.coverage() == ("records 1..6 hash-linked only (written before the log was keyed), 7..7 keyed; "
                                "head anchored at record 7")


def test_keying_at_install_anchors_the_log_before_its_first_record(store):
    log = AccessLog(store)
    assert log.init_secret() and not log.init_secret()
    assert log.check().problems == []
    log.record("op1", "login")
    assert log.check().coverage() == "records 1..1 keyed; head anchored at record 1"


def test_processes_appending_at_once_keep_one_chain(tmp_path):
    script = (f"from alprd.audit import AccessLog; from alprd.store import Store; "
              f"log = AccessLog(Store({str(tmp_path / 'a.db')!r}))\n"
              "for i in range(40): log.record('p', 'search', {'i': i}, case_number='C')")
    Store(tmp_path / "a.db").close()
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    assert all(p.wait(60) == 0 for p in procs)
    log = AccessLog(Store(tmp_path / "a.db"))
    assert len(log.show()) == 120 and log.verify() == []


def test_record_inside_a_callers_transaction(store):
    log = AccessLog(store)
    with store.transaction() as db:
        db["hotlist_meta"].insert({"key": "k", "value": "v"})
        log.record("op1", "hotlist.add", {"k": "v"})
    assert log.verify() == [] and store.query("SELECT value FROM hotlist_meta")[0]["value"] == "v"


def _chain(n: int) -> list[dict]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = {"ts": f"2026-01-01T00:00:{seq:02d}.000000Z", "username": "u", "action": "search",
                  "query": str(seq), "case_number": None, "reason": "r", "records": seq}
        h = record_hash(prev, fields)
        rows.append({"seq": seq, **fields, "prev_hash": prev, "hash": h})
        prev = h
    return rows


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 12), data=st.data())
def test_any_single_edit_delete_or_swap_is_detected(n, data):
    rows = _chain(n)
    head = {"seq": n, "hash": rows[-1]["hash"]}
    i = data.draw(st.integers(0, n - 1))
    kind = data.draw(st.sampled_from(["edit", "delete", "swap"]))
    if kind == "edit":
        rows[i] = {**rows[i], "records": rows[i]["records"] + 1}
    elif kind == "delete":
        del rows[i]
    else:
        j = i + 1 if i + 1 < n else i - 1
        a, b = rows[i], rows[j]
        rows[i], rows[j] = {**b, "seq": a["seq"]}, {**a, "seq": b["seq"]}
    assert find_problems(rows, head), kind


# -- users and login --------------------------------------------------------------
def test_passwords_are_stored_as_scrypt_hashes(users, store):
    stored = store.query("SELECT password_hash FROM users WHERE username = 'op1'")[0]["password_hash"]
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    with pytest.raises(AuthError, match="too short"):
        users.add("op2", "operator", "short", "2026-01-01", by=None)
    with pytest.raises(AuthError, match="role 'chief' unknown"):
        users.add("op2", "chief", PASSWORD, "2026-01-01", by=None)
    with pytest.raises(AuthError, match="not a date"):
        users.add("op2", "operator", PASSWORD, "15/01/2026", by=None)
    with pytest.raises(AuthError, match="not allowed"):
        users.add("John Smith", "operator", PASSWORD, "2026-01-01", by=None)


def test_untrained_user_is_refused_and_the_refusal_audited(users, store, password):
    with pytest.raises(AuthError, match="no training-completed date"):
        authorize(ns(user="new1", case="C-1"), store, Config(), "search")
    assert AccessLog(store).show(user="new1", action="login.refused")
    users.set_trained("new1", "2026-02-01", by="sup1")
    access = authorize(ns(user="new1", case="C-1"), store, Config(), "search")
    assert access.username == "new1" and access.case_number == "C-1"


def test_wrong_role_is_refused_and_audited(users, store, password):
    with pytest.raises(AuthError, match=r"op1 \(operator\) may not release.decide: needs role supervisor"):
        authorize(ns(user="op1"), store, Config(), "release.decide", roles=[Role.SUPERVISOR])
    denied = AccessLog(store).show(action="denied")
    assert denied[-1].username == "op1" and "release.decide" in denied[-1].query


def test_disabled_user_is_refused(users, store, password):
    users.set_disabled("op1", True, by="sup1")
    with pytest.raises(AuthError, match="disabled"):
        authorize(ns(user="op1", case="C-1"), store, Config(), "search")


def test_failed_logins_lock_the_account_and_are_audited(store, monkeypatch):
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    users = Users(store, PolicyConfig(max_failed_logins=3, lockout_minutes=15), clock=lambda: now[0])
    users.add("op1", "operator", PASSWORD, "2026-01-15", by=None)
    for _ in range(3):
        with pytest.raises(AuthError, match="wrong password"):
            users.authenticate("op1", "guess guess guess")
    with pytest.raises(AuthError, match="locked"):
        users.authenticate("op1", PASSWORD)  # even the right password, while locked
    log = AccessLog(store)
    assert len(log.show(user="op1", action="login.failed")) == 3
    assert log.show(user="op1", action="login.refused")
    now[0] += timedelta(minutes=16)
    assert users.authenticate("op1", PASSWORD).failed_logins == 0
    assert log.show(user="op1", action="login")


def test_parallel_logins_check_no_more_passwords_than_the_limit(users, store):
    """Each login its own connection, as separate processes would be; all start at once."""
    start = threading.Barrier(20)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        other = reopen(store)
        try:
            start.wait()
            Users(other, PolicyConfig(max_failed_logins=5)).authenticate("op1", f"guess number {i:02d}")
        except AuthError as err:
            outcomes.append("locked" if "is locked" in str(err) else "checked")
        finally:
            other.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["checked"] * 5 + ["locked"] * 15
    assert len(AccessLog(store).show(user="op1", action="login.failed")) == 5


def test_a_password_reset_ends_the_users_sessions(users, store):
    token, _ = Sessions(store, PolicyConfig()).issue("op1")
    users.set_password("op1", "a brand new password", by="sup1")
    with pytest.raises(AuthError, match="unknown or revoked"):
        Sessions(store, PolicyConfig()).resolve(token)


def test_the_only_administrator_cannot_disable_himself(users, store):
    users.add("boss", "administrator", PASSWORD, "2026-01-15", by=None)
    with pytest.raises(AuthError, match="boss is the only enabled administrator: add or enable another"):
        users.set_disabled("boss", True, by="boss")
    users.add("boss2", "administrator", PASSWORD, "2026-01-15", by="boss")
    assert users.set_disabled("boss", True, by="boss").disabled
    with pytest.raises(AuthError, match="only enabled administrator"):
        users.set_disabled("boss2", True, by="boss2")


def test_unknown_user_login_is_audited(users, store):
    with pytest.raises(AuthError, match="unknown user or wrong password"):
        users.authenticate("nobody", PASSWORD)
    assert AccessLog(store).show(user="nobody", action="login.failed")


def test_session_tokens_expire_and_are_stored_hashed(users, store, monkeypatch):
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    sessions = Sessions(store, PolicyConfig(session_minutes=30), clock=lambda: now[0])
    token, expires = sessions.issue("op1")
    assert expires.startswith("2026-03-01T12:30")
    assert store.query("SELECT count(*) AS n FROM sessions WHERE token_hash = ?", [token])[0]["n"] == 0
    assert sessions.resolve(token) == "op1"
    now[0] += timedelta(minutes=31)
    with pytest.raises(AuthError, match="expired"):
        sessions.resolve(token)
    with pytest.raises(AuthError, match="unknown or revoked"):
        sessions.resolve("made-up")


def test_token_login_and_revocation_on_disable(users, store, monkeypatch):
    monkeypatch.delenv("ALPRD_PASSWORD", raising=False)
    token, _ = Sessions(store, PolicyConfig()).issue("op1")
    access = authorize(ns(token=token, reason="follow-up on stolen vehicle report"), store, Config(), "search",
                       require_reason=True)
    assert access.username == "op1"
    with pytest.raises(AuthError, match="belongs to op1"):
        authorize(ns(token=token, user="sup1", case="C"), store, Config(), "search")
    users.set_disabled("op1", True, by="sup1")
    with pytest.raises(AuthError, match="unknown or revoked"):
        authorize(ns(token=token, case="C"), store, Config(), "search")


def test_no_password_without_a_terminal(users, store, monkeypatch):
    monkeypatch.delenv("ALPRD_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(AuthError, match="no password"):
        authorize(ns(user="op1", case="C"), store, Config(), "search")


def test_password_prompt_is_used_in_a_terminal(users, store, monkeypatch):
    monkeypatch.delenv("ALPRD_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked = []
    access = authorize(ns(user="op1", case="C-9"), store, Config(), "search",
                       prompt=lambda text: asked.append(text) or PASSWORD)
    assert asked == ["password for op1: "] and access.role is Role.OPERATOR


def test_case_or_detailed_reason_is_required():
    assert check_purpose("C-1", None, 15) == ("C-1", None)
    assert check_purpose(None, "  stolen   vehicle follow-up ", 15) == (None, "stolen vehicle follow-up")
    for case, reason in [(None, None), ("  ", None), (None, "checking"), (None, "x" * 14),
                         (None, "- . - . - . - . - . - ."), (None, "a b c d e f g h i j k l m n")]:
        with pytest.raises(AuthError, match="give a case/CFS number"):
            check_purpose(case, reason, 15)
    for case in ("-", "--", "?", " . ", "7"):
        with pytest.raises(AuthError, match=r"is not a case/CFS number: give the number on file"):
            check_purpose(case, "a perfectly good reason", 15)


def test_access_record_carries_who_what_why_and_count(users, store, password):
    access = authorize(ns(user="op1", case="CFS-2026-77"), store, Config(), "search", require_reason=True)
    seq = access.record({"plate": "AB?12*"}, records=4)
    rec = AccessLog(store).get(seq)
    assert (rec.username, rec.action, rec.case_number, rec.records) == ("op1", "search", "CFS-2026-77", 4)
    assert '"AB?12*"' in rec.query and rec.ts.endswith("Z")


def test_show_filters_by_user_date_and_action(log, store):
    rows = log.show()
    assert {r.username for r in log.show(user="user1")} == {"user1"}
    assert log.show(since=rows[2].ts, until=rows[4].ts) == rows[2:4]
    assert log.show(action="sea*") == rows and log.show(action="login") == []


def test_bootstrap_only_without_users_unless_root_recovery():
    assert may_bootstrap(0, is_root=False, root_recovery=False)
    assert not may_bootstrap(2, is_root=True, root_recovery=False)
    assert not may_bootstrap(2, is_root=False, root_recovery=True)
    assert may_bootstrap(2, is_root=True, root_recovery=True)
