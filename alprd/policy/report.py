"""The annual (or any period's) usage report the policy asks for.

:func:`gather` collects the figures from the database (live rows plus the
monthly counts the purge archived); :func:`render_markdown`, :func:`render_csv`
and :func:`render_chart` are pure and turn them into the report files. The
chart is drawn with OpenCV so no plotting library is needed on the unit.
Purged months are counted per whole month, so a period that starts or ends
mid-month counts that month's purged reads in full.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from alprd.audit import AccessLog
from alprd.policy.retention import PENDING, UNIT_OF_ALERT
from alprd.records import utc_now
from alprd.store import Store


@dataclass
class UsageReport:
    since: str
    until: str
    generated_at: str
    months: list[str]
    reads_by_month: Counter = field(default_factory=Counter)
    hits_by_month: Counter = field(default_factory=Counter)
    hits_by_category: Counter = field(default_factory=Counter)
    reads_by_unit: Counter = field(default_factory=Counter)  # the fleet's breakdown (one unit: itself)
    hits_by_unit: Counter = field(default_factory=Counter)
    dispositions: Counter = field(default_factory=Counter)
    searches: list[tuple[str, str, int, int]] = field(default_factory=list)  # user, purpose, searches, records
    access_by_action: Counter = field(default_factory=Counter)
    releases: list[dict[str, Any]] = field(default_factory=list)
    purges: list[dict[str, Any]] = field(default_factory=list)
    audit_problems: list[str] = field(default_factory=list)
    access_records: int = 0

    @property
    def total_reads(self) -> int:
        return sum(self.reads_by_month.values())

    @property
    def total_hits(self) -> int:
        return sum(self.hits_by_month.values())


def months_between(since: str, until: str) -> list[str]:
    """``YYYY-MM`` of every month touched by [since, until)."""
    y, m = int(since[:4]), int(since[5:7])
    last = _previous_month(until[:7]) if until[8:] == "01T00:00:00.000000Z" else until[:7]
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _previous_month(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    return f"{y - 1:04d}-12" if m == 1 else f"{y:04d}-{m - 1:02d}"


def gather(store: Store, since: str, until: str) -> UsageReport:
    rep = UsageReport(since, until, utc_now(), months_between(since, until))
    span = [since, until]
    archive = {"first": rep.months[0] if rep.months else "", "last": rep.months[-1] if rep.months else ""}
    for r in store.query("SELECT substr(ts, 1, 7) AS m, count(*) AS n FROM reads WHERE ts >= ? AND ts < ? "
                         "GROUP BY m", span):
        rep.reads_by_month[r["m"]] += r["n"]
    for r in store.query("SELECT substr(ts, 1, 7) AS m, coalesce(category, '?') AS c, "
                         f"coalesce(disposition, '{PENDING}') AS d, count(*) AS n FROM alerts "
                         "WHERE ts >= ? AND ts < ? GROUP BY m, c, d", span):
        rep.hits_by_month[r["m"]] += r["n"]
        rep.hits_by_category[r["c"]] += r["n"]
        rep.dispositions[r["d"]] += r["n"]
    for r in store.query("SELECT coalesce(device_id, '?') AS u, count(*) AS n FROM reads WHERE ts >= ? AND ts < ? "
                         "GROUP BY u", span):
        rep.reads_by_unit[r["u"]] += r["n"]
    for r in store.query(f"SELECT {UNIT_OF_ALERT} AS u, count(*) AS n FROM alerts WHERE ts >= ? AND ts < ? "
                         "GROUP BY u", span):
        rep.hits_by_unit[r["u"]] += r["n"]
    for r in store.query("SELECT month, metric, n FROM usage_archive WHERE month BETWEEN :first AND :last", archive):
        kind, _, key = r["metric"].partition(":")
        if kind == "reads":
            rep.reads_by_month[r["month"]] += r["n"]
        elif kind == "hits":
            rep.hits_by_month[r["month"]] += r["n"]
            rep.hits_by_category[key] += r["n"]
        elif kind == "disposition":
            rep.dispositions[key] += r["n"]
        elif kind == "unit_reads":
            rep.reads_by_unit[key] += r["n"]
        elif kind == "unit_hits":
            rep.hits_by_unit[key] += r["n"]
    rep.searches = [(r["u"], r["p"], r["n"], r["records"]) for r in store.query(
        "SELECT coalesce(username, '-') AS u, coalesce('case ' || case_number, reason, '-') AS p, count(*) AS n, "
        "sum(records) AS records FROM access_log WHERE action = 'search' AND ts >= ? AND ts < ? "
        "GROUP BY u, p ORDER BY u, n DESC", span)]
    for r in store.query("SELECT action, count(*) AS n FROM access_log WHERE ts >= ? AND ts < ? GROUP BY action", span):
        rep.access_by_action[r["action"]] = r["n"]
    rep.releases = store.query("SELECT id, agency, case_number, purpose, status, requested_at, decided_by "
                               "FROM release_requests WHERE requested_at >= ? AND requested_at < ? ORDER BY id", span)
    rep.purges = store.query("SELECT ts, cutoff, deleted, held, not_uploaded FROM purge_log "
                             "WHERE ts >= ? AND ts < ? ORDER BY ts", span)
    rep.audit_problems = [str(p) for p in AccessLog(store).verify()]
    rep.access_records = store.query("SELECT count(*) AS n FROM access_log")[0]["n"]
    return rep


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return lines if rows else lines + ["| " + " | ".join(["none"] + [""] * (len(header) - 1)) + " |"]


def render_markdown(rep: UsageReport, chart_file: str | None = "chart.png") -> str:
    pending = rep.dispositions.get(PENDING, 0)
    out = [f"# ALPR usage report {rep.since[:10]} to {rep.until[:10]} (UTC, end exclusive)", "",
           f"Generated {rep.generated_at[:19]}Z.", "",
           "## Summary", "",
           f"- Plate reads: {rep.total_reads}",
           (f"- Hotlist hits: {rep.total_hits}; checked through NCIC/state systems {rep.total_hits - pending} "
           f"(confirmed {rep.dispositions.get('confirmed', 0)}, misread {rep.dispositions.get('misread', 0)}), "
           f"not yet dispositioned {pending}"),
           f"- Searches: {sum(s[2] for s in rep.searches)} by {len({s[0] for s in rep.searches})} user(s)",
           f"- Release requests: {len(rep.releases)}",
           f"- Purge runs: {len(rep.purges)}, reads purged: {sum(p['deleted'] for p in rep.purges)}",
           "- Access log: " + (f"{rep.access_records} records, hash chain intact" if not rep.audit_problems
                               else f"TAMPERING DETECTED ({len(rep.audit_problems)} problem(s), listed below)"),
           ""]
    if chart_file:
        out += [f"![Reads and hits per month]({chart_file})", ""]
    out += ["## Reads and hits per month", ""]
    out += _table(["month", "reads", "hits"],
                  [[m, rep.reads_by_month[m], rep.hits_by_month[m]] for m in rep.months])
    out += ["", "## Reads and hits by unit", ""]
    out += _table(["unit", "reads", "hits"], [[u, rep.reads_by_unit[u], rep.hits_by_unit[u]]
                                              for u in sorted(set(rep.reads_by_unit) | set(rep.hits_by_unit))])
    out += ["", "## Hits by category", ""]
    out += _table(["category", "hits"], [[c, n] for c, n in rep.hits_by_category.most_common()])
    out += ["", "## Alert verification (NCIC/state check before any action)", ""]
    out += _table(["disposition", "alerts"], [[d, n] for d, n in rep.dispositions.most_common()])
    out += ["", "## Searches by user and reason", ""]
    out += _table(["user", "case / reason", "searches", "records returned"], [list(s) for s in rep.searches])
    out += ["", "## Releases to other agencies", ""]
    out += _table(["id", "agency", "case", "purpose", "status", "requested", "decided by"],
                  [[r["id"], r["agency"], r["case_number"], r["purpose"], r["status"], r["requested_at"][:10],
                    r["decided_by"] or "-"] for r in rep.releases])
    out += ["", "## Purges", ""]
    out += _table(["run", "cutoff", "deleted", "kept: held", "kept: not uploaded"],
                  [[p["ts"][:16], p["cutoff"][:10], p["deleted"], p["held"], p["not_uploaded"]] for p in rep.purges])
    out += ["", "## Access by action", ""]
    out += _table(["action", "records"], [[a, n] for a, n in sorted(rep.access_by_action.items())])
    out += ["", "## Audit verification", ""]
    intact = "Access log hash chain verified: no record edited, deleted or reordered."
    out += [f"- {p}" for p in rep.audit_problems] or [intact]
    return "\n".join(out) + "\n"


def render_csv(rep: UsageReport) -> str:
    """Every figure as ``section,item,value`` rows, for a spreadsheet."""
    rows: list[tuple[str, str, Any]] = [("period", "since", rep.since), ("period", "until", rep.until)]
    rows += [("reads_by_month", m, rep.reads_by_month[m]) for m in rep.months]
    rows += [("hits_by_month", m, rep.hits_by_month[m]) for m in rep.months]
    rows += [("reads_by_unit", u, n) for u, n in sorted(rep.reads_by_unit.items())]
    rows += [("hits_by_unit", u, n) for u, n in sorted(rep.hits_by_unit.items())]
    rows += [("hits_by_category", c, n) for c, n in rep.hits_by_category.most_common()]
    rows += [("alert_disposition", d, n) for d, n in rep.dispositions.most_common()]
    rows += [("searches", f"{u} / {p}", n) for u, p, n, _ in rep.searches]
    rows += [("release", f"{r['id']} {r['agency']} case {r['case_number']}", r["status"]) for r in rep.releases]
    rows += [("purge", p["ts"], p["deleted"]) for p in rep.purges]
    rows += [("access_by_action", a, n) for a, n in sorted(rep.access_by_action.items())]
    rows += [("audit", "chain_intact", int(not rep.audit_problems)), ("audit", "problems", len(rep.audit_problems))]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "value"])
    writer.writerows(rows)
    return out.getvalue()


def _panel(img: np.ndarray, top: int, height: int, title: str, months: list[str], values: list[int],
           color: tuple[int, int, int]) -> None:
    font, left, right = cv2.FONT_HERSHEY_SIMPLEX, 70, img.shape[1] - 20
    cv2.putText(img, title, (left, top + 18), font, 0.6, (30, 30, 30), 1, cv2.LINE_AA)
    base, peak = top + height - 28, max(values, default=0)
    usable, scale = height - 60, max(peak, 1)
    cv2.line(img, (left, base), (right, base), (60, 60, 60), 1)
    cv2.putText(img, f"{peak:,}", (4, base - usable + 5), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.putText(img, "0", (50, base + 4), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    slot = (right - left) / max(len(months), 1)
    for i, (month, value) in enumerate(zip(months, values, strict=True)):
        x0 = int(left + i * slot + slot * 0.15)
        x1 = int(left + (i + 1) * slot - slot * 0.15)
        cv2.rectangle(img, (x0, base - int(usable * value / scale)), (x1, base), color, -1)
        cv2.putText(img, month[2:], (x0, base + 16), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
        if value:
            cv2.putText(img, str(value), (x0, base - int(usable * value / scale) - 4), font, 0.35, (30, 30, 30), 1,
                        cv2.LINE_AA)


def render_chart(rep: UsageReport, width: int = 960) -> np.ndarray:
    """Reads (top) and hotlist hits (bottom) per month as a BGR image."""
    img = np.full((520, width, 3), 255, np.uint8)
    _panel(img, 10, 250, "Plate reads per month", rep.months, [rep.reads_by_month[m] for m in rep.months],
           (180, 110, 40))
    _panel(img, 265, 250, "Hotlist hits per month", rep.months, [rep.hits_by_month[m] for m in rep.months],
           (40, 40, 200))
    return img


def write_report(rep: UsageReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "report.md", folder / "report.csv", folder / "chart.png"]
    paths[0].write_text(render_markdown(rep, paths[2].name), encoding="utf-8")
    paths[1].write_text(render_csv(rep), encoding="utf-8", newline="")
    if not cv2.imwrite(str(paths[2]), render_chart(rep)):
        raise OSError(f"{paths[2]}: could not write the chart")
    return paths
