"""TRIPOD+AI model card, rendered as Markdown and as one self-contained HTML file.

Why both: the Markdown is diffable and logged next to the model; the HTML is what a clinician or
reviewer opens, so it must work offline and leak nothing: inline CSS, images as base64 data URIs,
and no http(s) reference of any kind (URLs typed into text fields are shown but defanged so nothing
is fetched or linked). All text is HTML-escaped (also in the Markdown, where renderers would pass
raw HTML through).

Sections follow TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) in the order of ``SECTIONS``; a
"Synthetic data warning" section comes first when ``info["synthetic"]`` is true.

The ``info`` dict (every key optional except where noted; missing ones render as "not recorded"):

- model_name: str; version: str | int; trained_at: str (ISO date-time); synthetic: bool
- intended_use: str, users: str, out_of_scope: list[str]
- data: {source, n_admissions, n_labelled, date_range: str | (start, end), digest, **extra}
- label: {rater, threshold, min_valid_weeks, prevalence, definition: str (overrides the default)}
- predictors: list of (name, driver, modifiable, direction) tuples or dicts with those keys;
  predictors_note: str (timing, definitions)
- missing: str | DataFrame | list[dict]
- validation: str | list[str]
- metrics: {name: (point, lo, hi) | float}; oracle: {name: float | (point, lo, hi)}
- candidates: DataFrame | list[dict] (model comparison)
- protocol: "cv" | "holdout" (how the figures were obtained; ``models.training``)
- learning_curve: DataFrame (fraction, n, log_loss, auroc); transport: DataFrame (one row per
  service, leave-one-service-out)
- decision_curve: str | DataFrame (summary of net benefit at chosen thresholds)
- subgroups: DataFrame (``metrics.subgroup_metrics``); subgroups_note: str
- fairness: DataFrame (``fairness.fairness_table``); fairness_gaps: DataFrame
  (``fairness.largest_gaps``; computed from the table when absent)
- bands: DataFrame (``metrics.band_table``); band_config: {moderate_from, high_from};
  bands_note: str (how outputs are shown)
- explanations: {driver group: mean |SHAP|}; explanation_method: str;
  driver_rank_spearman: float (agreement of the driver ranking with the simulator's truth)
- stability: DataFrame (``models.stability.risk_steps``), shown beside the dependence plots
- images: {title: path} shown under Performance, or {title: (section heading, path)}
- limitations: list[str]
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

SYNTHETIC_HEADING = "Synthetic data warning"
SECTIONS: tuple[str, ...] = (
    "Intended use and users",
    "Data and dates",
    "Label",
    "Predictors",
    "Missing data",
    "Validation method",
    "Performance",
    "Subgroups",
    "Fairness at the band thresholds",
    "Thresholds and risk bands",
    "Explanations",
    "Limitations",
)
NOT_RECORDED = "Not recorded."
DEFAULT_INTENDED_USE = (
    "Estimates, at admission to drug treatment, the risk that a client forms a low early "
    "therapeutic alliance with their counsellor in weeks 1-3, and shows the modifiable drivers "
    "(motivation, coping, social support, psychological state) behind that risk."
)
DEFAULT_USERS = (
    "Intake workers and counsellors, as a prompt to act on modifiable drivers and to monitor the "
    "alliance. Not for refusing, delaying or rationing treatment, and not a diagnosis."
)
_URL = re.compile(r"(?i)\b(https?|ftp)://")

# A card is a list of sections; a section is a list of blocks, each rendered to both formats.
Block = tuple  # ("p", str) | ("ul", list[str]) | ("table", DataFrame) | ("img", title, path)


# ----------------------------------------------------------------------------- formatting
def _fmt(value: Any) -> str:
    """One cell or value as text: 3 decimals for floats, a dash for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.0f}" if value.is_integer() else f"{value:.3f}"
    if isinstance(value, tuple | list):
        return ", ".join(_fmt(v) for v in value)
    try:
        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):  # numpy scalar
        return _fmt(value.item())
    return str(value)


def _esc(text: str, quote: bool = True) -> str:
    """HTML-escape, then defang URL schemes so no text can become a fetch or a link."""
    return _URL.sub(lambda m: f"{m.group(1)}&#58;//", html.escape(text, quote=quote))


def _md_esc(text: str) -> str:
    return _esc(text, quote=False).replace("|", "&#124;").replace("\n", " ")


def _table(data: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True) if columns is None else data[list(columns)]
    rows = list(data)
    if rows and not isinstance(rows[0], Mapping):
        return pd.DataFrame(rows, columns=list(columns) if columns else None)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- sections
def _text_or_table(value: Any) -> list[Block]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return [("p", NOT_RECORDED)]
    if isinstance(value, str):
        return [("p", value)]
    if isinstance(value, pd.DataFrame) or (
        isinstance(value, list) and value and isinstance(value[0], Mapping)
    ):
        return [("table", _table(value))]
    if isinstance(value, list | tuple):
        return [("ul", [_fmt(v) for v in value])]
    return [("p", _fmt(value))]


def _synthetic_section() -> list[Block]:
    return [
        (
            "p",
            "This model was trained and evaluated on SYNTHETIC DATA generated by a simulator. "
            "Its performance figures describe the simulator, not real clients, and it must not be "
            "used for clinical decisions.",
        )
    ]


def _intended_use(info: Mapping) -> list[Block]:
    blocks: list[Block] = [
        ("p", info.get("intended_use") or DEFAULT_INTENDED_USE),
        ("p", "Users: " + (info.get("users") or DEFAULT_USERS)),
    ]
    if info.get("out_of_scope"):
        blocks += [("p", "Out of scope:"), ("ul", [_fmt(v) for v in info["out_of_scope"]])]
    return blocks


def _data(info: Mapping) -> list[Block]:
    data = info.get("data") or {}
    if not data:
        return [("p", NOT_RECORDED)]
    labels = {
        "source": "Source",
        "n_admissions": "Admissions",
        "n_labelled": "Labelled clients (sample size)",
        "date_range": "Dates",
        "digest": "Data digest (SHA-256)",
    }
    items = [f"{labels[k]}: {_fmt(data[k])}" for k in labels if k in data]
    items += [f"{k}: {_fmt(v)}" for k, v in data.items() if k not in labels]
    return [("ul", items)]


def _label(info: Mapping) -> list[Block]:
    label = info.get("label") or {}
    if not label:
        return [("p", NOT_RECORDED)]
    definition = label.get("definition") or (
        f"Low early alliance = mean WAI-S item score (1-7) over the valid weeks 1-3 below "
        f"{_fmt(label.get('threshold'))}, rated by the {_fmt(label.get('rater'))}; at least "
        f"{_fmt(label.get('min_valid_weeks'))} valid week(s) required. Time horizon: the first three "
        "weeks of treatment. The cut-off is a configurable choice: no published clinical cut-off exists."
    )
    blocks: list[Block] = [("p", definition)]
    if "prevalence" in label:
        blocks.append(("p", f"Prevalence of low alliance: {_fmt(label['prevalence'])}."))
    return blocks


def _predictors(info: Mapping) -> list[Block]:
    preds = info.get("predictors")
    blocks: list[Block] = []
    if info.get("predictors_note"):
        blocks.append(("p", info["predictors_note"]))
    if not preds:
        return blocks or [("p", NOT_RECORDED)]
    cols = ["name", "driver", "modifiable", "direction"]
    return blocks + [("table", _table(preds, None if isinstance(preds[0], Mapping) else cols))]


def _validation(info: Mapping) -> list[Block]:
    return _text_or_table(info.get("validation"))


def _metrics_table(info: Mapping) -> pd.DataFrame:
    oracle = info.get("oracle") or {}
    rows = []
    for name, value in info["metrics"].items():
        point, lo, hi = value if isinstance(value, tuple | list) else (value, None, None)
        row = {
            "metric": name,
            "estimate": point,
            "95% CI": "-" if lo is None else f"{_fmt(lo)} to {_fmt(hi)}",
        }
        if oracle:
            o = oracle.get(name)
            o = o[0] if isinstance(o, tuple | list) else o
            row["oracle"] = o
            row["gap (model - oracle)"] = None if o is None else float(point) - float(o)
        rows.append(row)
    return pd.DataFrame(rows)


def _performance(info: Mapping) -> list[Block]:
    blocks: list[Block] = []
    if info.get("metrics"):
        blocks.append(("p", _performance_heading(info.get("protocol"))))
        blocks.append(("table", _metrics_table(info)))
        if info.get("oracle"):
            blocks.append(("p", "Oracle = the simulator's true risk: the best any model can do."))
    if info.get("candidates") is not None:
        blocks += [("p", "Candidate models:"), ("table", _table(info["candidates"]))]
    if info.get("decision_curve") is not None:
        blocks += [("p", "Clinical utility (net benefit):")] + _text_or_table(
            info["decision_curve"]
        )
    curve = info.get("learning_curve")
    if curve is not None and len(curve):
        blocks += [
            (
                "p",
                "Learning curve of this data: the champion's kind evaluated the same way on "
                "fractions of the training admissions (fraction 1 = the figures above). A curve "
                "still falling at 1 says more admissions would still help.",
            ),
            ("table", _table(curve)),
        ]
    transport = info.get("transport")
    if transport is not None and len(transport):
        blocks += [
            (
                "p",
                "Transport to a new service (leave-one-service-out, internal-external validation): "
                "for each service, a model of the champion's kind trained on all the other services "
                "and scored on that one (AUROC with its cluster-bootstrap 95% CI). Calibration "
                "intercept far from 0 means that service's rate differs from the others'.",
            ),
            ("table", _table(transport)),
        ]
    return blocks or [("p", NOT_RECORDED)]


def _performance_heading(protocol: str | None) -> str:
    if protocol == "cv":
        return (
            "Out-of-fold performance (repeated grouped cross-validation on all labelled "
            "admissions) with cluster-bootstrap 95% CIs:"
        )
    if protocol == "holdout":
        return "Held-out performance (grouped held-out split) with cluster-bootstrap 95% CIs:"
    return "Performance with percentile bootstrap 95% CIs:"


def _subgroups(info: Mapping) -> list[Block]:
    frame = info.get("subgroups")
    blocks: list[Block] = []
    if info.get("subgroups_note"):
        blocks.append(("p", info["subgroups_note"]))
    if frame is None or len(frame) == 0:
        return blocks or [("p", NOT_RECORDED)]
    blocks.append(("table", _table(frame)))
    if "suppressed" in frame and bool(frame["suppressed"].any()):
        blocks.append(("p", "Suppressed rows: too few clients or events to report safely."))
    return blocks


def _fairness(info: Mapping) -> list[Block]:
    """models.fairness's table and gaps, in readable form; its plots come as images."""
    from models import fairness as F

    table = info.get("fairness")
    if table is None or len(table) == 0:
        return [("p", NOT_RECORDED)]
    return [
        ("p", F.CARD_NOTE),
        ("table", F.display_table(table)),
        ("p", "Largest gap between levels of each subgroup (highest minus lowest, 95% CI):"),
        ("table", F.display_gaps(info.get("fairness_gaps", F.largest_gaps(table)))),
    ]


def _bands(info: Mapping) -> list[Block]:
    blocks: list[Block] = []
    cfg = info.get("band_config")
    if cfg:
        blocks.append(
            (
                "p",
                f"Bands: low below {_fmt(cfg.get('moderate_from'))}, moderate from "
                f"{_fmt(cfg.get('moderate_from'))}, high from {_fmt(cfg.get('high_from'))}.",
            )
        )
    if info.get("bands_note"):
        blocks.append(("p", info["bands_note"]))
    if info.get("bands") is not None:
        blocks.append(("table", _table(info["bands"])))
    return blocks or [("p", NOT_RECORDED)]


def _explanations(info: Mapping) -> list[Block]:
    blocks: list[Block] = []
    if info.get("explanation_method"):
        blocks.append(("p", info["explanation_method"]))
    expl = info.get("explanations")
    if expl:
        ranked = sorted(expl.items(), key=lambda kv: kv[1], reverse=True)
        blocks.append(("table", pd.DataFrame(ranked, columns=["driver group", "mean |SHAP|"])))
    rho = info.get("driver_rank_spearman")
    if rho is not None:
        blocks.append(
            (
                "p",
                f"Spearman correlation of the driver ranking with the simulator's truth: {_fmt(rho)}.",
            )
        )
    stab = info.get("stability")
    if stab is not None and len(stab):
        blocks.append(("p", STABILITY_NOTE))
        blocks.append(("table", _table(stab)))
    return blocks or [("p", NOT_RECORDED)]


STABILITY_NOTE = (
    "Smooth risk: change of the risk (percentage points) when one scale score moves by one step "
    "within its measurement error (1 point on a TCU scale or the GHQ-12, 0.1 on a Brief COPE "
    "mean, 1 on a 1-7 attachment rating), 99th percentile and maximum over clients; goal at most "
    "2 for 99% of clients and 4 for any (models.stability)."
)


def _limitations(info: Mapping) -> list[Block]:
    items = [str(v) for v in info.get("limitations") or []]
    if info.get("synthetic"):
        items.insert(
            0, "Trained and evaluated on synthetic data only; not validated on real clients."
        )
    return [("ul", items)] if items else [("p", NOT_RECORDED)]


def _images_by_section(info: Mapping) -> dict[str, list[Block]]:
    out: dict[str, list[Block]] = {}
    for title, value in (info.get("images") or {}).items():
        section, path = value if isinstance(value, tuple | list) else ("Performance", value)
        if section not in SECTIONS:
            section = "Performance"
        out.setdefault(section, []).append(("img", str(title), Path(path)))
    return out


def build_sections(info: Mapping) -> list[tuple[str, list[Block]]]:
    """The card as (heading, blocks) pairs, shared by both renderers so they cannot drift apart."""
    images = _images_by_section(info)
    builders = {
        "Intended use and users": lambda: _intended_use(info),
        "Data and dates": lambda: _data(info),
        "Label": lambda: _label(info),
        "Predictors": lambda: _predictors(info),
        "Missing data": lambda: _text_or_table(info.get("missing")),
        "Validation method": lambda: _validation(info),
        "Performance": lambda: _performance(info),
        "Subgroups": lambda: _subgroups(info),
        "Fairness at the band thresholds": lambda: _fairness(info),
        "Thresholds and risk bands": lambda: _bands(info),
        "Explanations": lambda: _explanations(info),
        "Limitations": lambda: _limitations(info),
    }
    sections = [(SYNTHETIC_HEADING, _synthetic_section())] if info.get("synthetic") else []
    for heading in SECTIONS:
        blocks = builders[heading]()
        extra = images.get(heading, [])
        if extra and len(blocks) == 1 and blocks[0][:2] == ("p", NOT_RECORDED):
            blocks = []
        sections.append((heading, blocks + extra))
    return sections


# ----------------------------------------------------------------------------- markdown
def _md_table(frame: pd.DataFrame) -> str:
    """Minimal GitHub-flavoured table (pandas' to_markdown would need tabulate)."""
    header = "| " + " | ".join(_md_esc(str(c)) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(_md_esc(_fmt(v)) for v in row) + " |"
        for row in frame.itertuples(index=False, name=None)
    ]
    return "\n".join([header, rule, *body])


def _md_block(block: Block) -> str:
    kind = block[0]
    if kind == "p":
        return _md_esc(str(block[1]))
    if kind == "ul":
        return "\n".join(f"- {_md_esc(str(item))}" for item in block[1])
    if kind == "table":
        return _md_table(block[1])
    title, path = block[1], block[2]
    return (
        f"![{_md_esc(title)}]({path.name})"
        if path.exists()
        else f"(image missing: {_md_esc(title)})"
    )


def _header(info: Mapping) -> tuple[str, str]:
    title = f"Model card: {_fmt(info.get('model_name') or 'alliance-risk')}"
    if info.get("version") is not None:
        title += f" version {_fmt(info['version'])}"
    sub = f"Trained {_fmt(info['trained_at'])}." if info.get("trained_at") else ""
    return title, sub + " Reporting standard: TRIPOD+AI."


# ----------------------------------------------------------------------------- html
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #333;padding-bottom:.3rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #bbb;padding:.2rem .5rem;text-align:left}th{background:#f0f0f0}
tr:nth-child(even) td{background:#fafafa}
.synthetic{border:3px solid #b00020;background:#fdecee;padding:.5rem 1rem;margin:1rem 0}
.synthetic h2{color:#b00020;border:none;margin-top:.3rem}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}img{max-width:100%}
"""


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_esc(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False, name=None)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(path: Path) -> str | None:
    mime = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".svg": "image/svg+xml",
    }
    if not path.is_file() or path.suffix.lower() not in mime:
        return None
    return (
        f"data:{mime[path.suffix.lower()]};base64," + base64.b64encode(path.read_bytes()).decode()
    )


def _html_block(block: Block) -> str:
    kind = block[0]
    if kind == "p":
        return f"<p>{_esc(str(block[1]))}</p>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{_esc(str(i))}</li>" for i in block[1]) + "</ul>"
    if kind == "table":
        return _html_table(block[1])
    title, uri = _esc(block[1]), _data_uri(block[2])
    if uri is None:
        return f"<p>(image missing: {title})</p>"
    return f'<figure><img src="{uri}" alt="{title}"><figcaption>{title}</figcaption></figure>'


def render_model_card(info: Mapping[str, Any]) -> tuple[str, str]:
    """Render the card; returns (markdown, html). See the module docstring for ``info`` keys.

    Markdown image links use the file name only, so log the images next to the card."""
    sections = build_sections(info)
    title, sub = _header(info)
    md = [f"# {_md_esc(title)}", _md_esc(sub.strip())]
    body = [f"<h1>{_esc(title)}</h1>", f"<p>{_esc(sub.strip())}</p>"]
    for heading, blocks in sections:
        md.append(f"## {heading}")
        md += [_md_block(b) for b in blocks]
        inner = f"<h2>{_esc(heading)}</h2>" + "".join(_html_block(b) for b in blocks)
        cls = ' class="synthetic"' if heading == SYNTHETIC_HEADING else ""
        body.append(f"<section{cls}>{inner}</section>")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    return "\n\n".join(md) + "\n", page
