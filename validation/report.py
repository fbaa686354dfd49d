"""Validating a dataset and reporting the result (Python API behind `python -m pipelines.validate`).

The primary report is ``<report_dir>/validation_report.html``: self-contained (inline CSS, no
script, nothing loaded from outside the machine), with every rule that failed and every failing row
(table, field, value, admission_id). GX Data Docs are also written to ``<report_dir>/gx/`` for the
suite-level view; GX's pages pull Bootstrap, jQuery, Vega and fonts from CDNs, so every external
reference is removed from them after building and a small inline stylesheet is added instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from features.catalog import TABLES
from features.errors import FieldError
from features.settings import ValidationConfig

REPORT_FILE = "validation_report.html"
GX_DOCS_DIR = "gx"
MAX_HTML_ROWS = 2000  # failing rows listed in the HTML report (all are counted)
EXAMPLES = 3


@dataclass
class TableSummary:
    table: str
    rows: int
    expectations: int
    failed_expectations: int
    errors: int
    blocking: bool


@dataclass
class ValidationReport:
    """Everything one validation found. ``errors`` holds every FieldError; ``rules`` and
    ``row_ids`` run parallel to it (the rule that failed; the row id, which for counsellors.csv
    is the counsellor_id)."""

    errors: list[FieldError] = field(default_factory=list)
    tables: dict[str, TableSummary] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    row_ids: list[str | None] = field(default_factory=list)
    dropped_admission_ids: list[str] = field(default_factory=list)
    report_path: Path | None = None
    docs_dir: Path | None = None

    @property
    def blocking(self) -> bool:
        return any(e.blocking for e in self.errors)

    @property
    def blocking_errors(self) -> list[FieldError]:
        return [e for e in self.errors if e.blocking]

    def add(self, error: FieldError, rule: str, row_id: str | None = None) -> None:
        self.errors.append(error)
        self.rules.append(rule)
        self.row_ids.append(row_id if row_id is not None else error.admission_id)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per (table, field, rule): failing count, first few row ids and values."""
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for err, rule, rid in zip(self.errors, self.rules, self.row_ids, strict=True):
            key = (err.table, err.field, rule)
            g = groups.setdefault(
                key,
                {
                    "table": err.table,
                    "field": err.field,
                    "rule": rule,
                    "count": 0,
                    "example_ids": [],
                    "example_values": [],
                    "reason": _strip_row(err.reason),
                    "blocking": False,
                },
            )
            g["count"] += 1
            g["blocking"] = g["blocking"] or err.blocking
            if rid is not None and rid not in g["example_ids"] and len(g["example_ids"]) < EXAMPLES:
                g["example_ids"].append(rid)
            if err.value is not None and len(g["example_values"]) < EXAMPLES:
                if err.value not in g["example_values"]:
                    g["example_values"].append(err.value)
        order = {t: i for i, t in enumerate(TABLES)}
        return sorted(
            groups.values(),
            key=lambda g: (not g["blocking"], order.get(g["table"], 9), g["field"], g["rule"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocking": self.blocking,
            "tables": {t: vars(s) for t, s in self.tables.items()},
            "summary": self.summary_rows(),
            "errors": [
                {**e.to_dict(), "rule": r, "row_id": rid}
                for e, r, rid in zip(self.errors, self.rules, self.row_ids, strict=True)
            ],
            "dropped_admission_ids": self.dropped_admission_ids,
            "report_path": str(self.report_path) if self.report_path else None,
            "docs_dir": str(self.docs_dir) if self.docs_dir else None,
        }

    def to_html(self) -> str:
        return _render_html(self)

    def write(self, report_dir: str | Path) -> Path:
        """Write the self-contained HTML report; returns its path."""
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / REPORT_FILE
        path.write_text(self.to_html(), encoding="utf-8")
        self.report_path = path
        return path

    def drop_rows(self, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """The tables without the admissions this report dropped (see max_drop_fraction)."""
        if not self.dropped_admission_ids:
            return dict(tables)
        gone = set(self.dropped_admission_ids)
        out = {}
        for name, df in tables.items():
            if "admission_id" in df.columns:
                df = df[~df["admission_id"].isin(gone)]
            out[name] = df
        return out


def _strip_row(reason: str) -> str:
    return re.sub(r" \[(row \d+|[a-z_]+=[^\]]*)\]", "", reason)


# --------------------------------------------------------------------------------------------
# Validation


def validate_tables(
    tables: dict[str, pd.DataFrame],
    cfg: ValidationConfig | None = None,
    docs_dir: str | Path | None = None,
) -> ValidationReport:
    """Validate the contract's tables (one GX run per table). docs_dir: also build GX Data Docs.

    With cfg.max_drop_fraction > 0, admissions whose only problems are row-level ones may be
    dropped (errors kept, marked non-blocking and "row dropped") as long as they are at most that
    fraction of intake; table-level problems and counsellor rows always block.
    """
    from validation.suites import run_suites

    cfg = cfg or ValidationConfig()
    docs = Path(docs_dir) if docs_dir is not None else None
    results = run_suites(tables, docs)
    report = ValidationReport(docs_dir=docs)
    for r in results:
        for issue in r.issues:
            report.add(issue.error, issue.rule, issue.row_id)
    _apply_drop(report, tables, cfg)
    for r in results:
        errs = [e for e in report.errors if e.table == r.table]
        report.tables[r.table] = TableSummary(
            r.table,
            r.rows,
            r.expectations,
            r.failed_expectations,
            len(errs),
            any(e.blocking for e in errs),
        )
    if docs is not None:
        sanitize_docs(docs)
    return report


def _apply_drop(report: ValidationReport, tables: dict[str, pd.DataFrame], cfg) -> None:
    if cfg.max_drop_fraction <= 0 or not report.blocking:
        return
    row_level = [
        e.blocking and e.admission_id is not None and e.table != "counsellors"
        for e in report.errors
    ]
    if any(e.blocking and not rl for e, rl in zip(report.errors, row_level, strict=True)):
        return  # a table-level or counsellor problem: nothing may be dropped
    bad = sorted({e.admission_id for e, rl in zip(report.errors, row_level, strict=True) if rl})
    n = len(tables.get("intake", ()))
    if not n or len(bad) > cfg.max_drop_fraction * n:
        return
    note = f"; row dropped (max_drop_fraction={cfg.max_drop_fraction})"
    report.errors = [
        replace(e, blocking=False, reason=e.reason + note) if rl else e
        for e, rl in zip(report.errors, row_level, strict=True)
    ]
    report.dropped_admission_ids = bad


# --------------------------------------------------------------------------------------------
# HTML


def _render_html(report: ValidationReport) -> str:
    """The report from reporting/templates/validation_report.html.j2."""
    from reporting import render

    yes = lambda b: "yes" if b else "no"  # noqa: E731
    tables = pd.DataFrame(
        [
            (s.table, s.rows, s.expectations, s.failed_expectations, s.errors, yes(s.blocking))
            for s in report.tables.values()
        ],
        columns=["table", "rows", "expectations", "expectations failed", "problems", "blocking"],
    )
    groups = report.summary_rows()
    failed = pd.DataFrame(
        [
            (
                g["table"],
                g["field"],
                g["rule"],
                g["reason"],
                g["count"],
                ", ".join(map(str, g["example_ids"])),
                ", ".join(map(repr, g["example_values"])),
                yes(g["blocking"]),
            )
            for g in groups
        ],
        columns=[
            "table",
            "field",
            "rule",
            "reason",
            "rows failing",
            "example ids",
            "example values",
            "blocking",
        ],
    )
    listed = list(zip(report.errors, report.rules, report.row_ids, strict=True))[:MAX_HTML_ROWS]
    rows = pd.DataFrame(
        [
            (e.table, e.field, r, repr(e.value), rid, e.reason, yes(e.blocking))
            for e, r, rid in listed
        ],
        columns=["table", "field", "rule", "value", "row id", "reason", "blocking"],
    )
    return render(
        "validation_report.html.j2",
        title="Data validation report (data contract v1)",
        blocking=report.blocking,
        dropped=report.dropped_admission_ids,
        failed_any=bool(groups),
        tables=tables,
        failed=failed,
        failed_classes=["block" if g["blocking"] else "warn" for g in groups],
        rows=rows,
        row_classes=["block" if e.blocking else "warn" for e, _, _ in listed],
        more=max(len(report.errors) - MAX_HTML_ROWS, 0),
    )


# --------------------------------------------------------------------------------------------
# GX Data Docs, made offline

_EXTERNAL = r"""(?:https?:)?//[^"'\s>)]*"""
_LINK_TAG = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']" + _EXTERNAL + r"[\"'][^>]*>", re.I)
_SCRIPT_TAG = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']" + _EXTERNAL + r"[\"'][^>]*>\s*</script>", re.I
)
_ATTR = re.compile(r"\b(href|src|action)\s*=\s*([\"'])" + _EXTERNAL + r"\2", re.I)
_CSS_URL = re.compile(r"url\(\s*[\"']?" + _EXTERNAL + r"[\"']?\s*\)", re.I)
_CSS_IMPORT = re.compile(r"@import\s+[^;]*https?://[^;]*;", re.I)
DOCS_CSS = (
    "<style>body{font-family:system-ui,sans-serif;margin:1rem}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2rem .4rem}.hide,.d-none{display:none}</style>"
)


def strip_external(text: str, is_html: bool = True) -> str:
    """Remove every reference to a resource outside the machine from HTML or CSS text."""
    text = _CSS_IMPORT.sub("", text)
    text = _CSS_URL.sub("none", text)
    if is_html:
        text = _LINK_TAG.sub("", text)
        text = _SCRIPT_TAG.sub("", text)
        text = _ATTR.sub(lambda m: f"{m.group(1)}={m.group(2)}#{m.group(2)}", text)
        if DOCS_CSS not in text:
            text = re.sub(r"(<head[^>]*>)", r"\1" + DOCS_CSS, text, count=1, flags=re.I)
    return text


def sanitize_docs(docs_dir: Path) -> None:
    for path in docs_dir.rglob("*"):
        if path.suffix in (".html", ".css", ".js") and path.is_file():
            old = path.read_text(encoding="utf-8", errors="replace")
            new = strip_external(old, is_html=path.suffix == ".html")
            if new != old:
                path.write_text(new, encoding="utf-8")


def print_summary(report: ValidationReport, console) -> None:
    """The readable terminal summary shared by `pipelines.validate` and `pipelines.train`."""
    from rich.table import Table

    t = Table(title="Data contract validation", show_lines=False)
    for col in ("table", "field", "rule", "failing", "example ids", "example values", "blocking"):
        t.add_column(col, overflow="fold")
    for g in report.summary_rows():
        t.add_row(
            g["table"],
            g["field"],
            g["rule"],
            str(g["count"]),
            ", ".join(map(str, g["example_ids"])),
            ", ".join(repr(v) for v in g["example_values"]),
            "yes" if g["blocking"] else "no",
            style="red" if g["blocking"] else "yellow",
        )
    sizes = ", ".join(f"{s.table} {s.rows} rows" for s in report.tables.values())
    console.print(f"Checked {sizes}.")
    if report.errors:
        console.print(t)
        for e in report.blocking_errors[:10]:
            console.print(f"  {e}", markup=False, highlight=False)
        more = len(report.blocking_errors) - 10
        if more > 0:
            console.print(f"  ... {more} more blocking error(s); see the HTML report")
    if report.dropped_admission_ids:
        console.print(f"Dropped {len(report.dropped_admission_ids)} admission(s) (allowed).")
    verdict = (
        "BLOCKING: the dataset fails the contract" if report.blocking else "OK: no blocking problem"
    )
    console.print(verdict, style="bold red" if report.blocking else "bold green")
    if report.report_path:
        console.print(f"Report: {report.report_path}  (GX Data Docs: {report.docs_dir}/index.html)")
