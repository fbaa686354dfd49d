"""TRIPOD+AI model card, rendered as Markdown and as one self-contained HTML file.

Why both: the Markdown is diffable and logged next to the model; the HTML is what a clinician or
reviewer opens, so it must work offline and leak nothing: inline CSS, images as base64 data URIs,
and no http(s) reference of any kind (URLs typed into text fields are shown but defanged so nothing
is fetched or linked). All text is HTML-escaped (also in the Markdown, where renderers would pass
raw HTML through).

Sections follow TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) in the order of ``SECTIONS``; a
"Synthetic data warning" section comes first when ``info.synthetic`` is true.

The ``info`` dict (every key optional except where noted; missing ones render as "not recorded"):

- model_name: str; version: str | int (the registry version; before registration the title says
  "not yet registered", and ``pipelines.train`` renders the card again once it is registered);
  trained_at: str (ISO date-time); synthetic: bool
- intended_use: str, users: str, out_of_scope: list[str]
- data: {source, n_admissions, n_labelled, date_range: str | (start, end), digest, **extra}
- label: {rater, threshold, min_valid_weeks, prevalence, definition: str (overrides the default)};
  label_counts: {name: count} (``features.labels.LabelResult.counts``), shown as a table
- predictors: list of (name, driver, modifiable, direction) tuples or dicts with those keys;
  predictors_note: str (timing, definitions)
- missing: str | DataFrame | list[dict]
- validation: str | list[str]
- metrics: {name: (point, lo, hi) | float}; oracle: {name: float | (point, lo, hi)}
- candidates: DataFrame | list[dict] (model comparison)
- protocol: "cv" | "holdout" (how the figures were obtained; ``models.building.training``)
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
- stability: DataFrame (``models.building.stability.risk_steps``: figures, bound and PASS/FAIL per
  scale), shown beside the dependence plots
- weekly: the weekly early warning (``models.building.tracking.weekly_card``): {table, band_quantile,
  band_bins, band_raters, rupture_threshold, discrepancy_threshold, coefficients}
- images: {title: path} shown under Performance, or {title: (section heading, path)}
- limitations: list[str]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from reporting import data_uri
from reporting import fmt as _fmt

SYNTHETIC_HEADING = "Synthetic data warning"


class CardInfo(BaseModel):
    """The typed view the card is rendered from (the keys listed in the module docstring). Every
    field is optional: a missing one renders as "not recorded". An unknown key is refused by
    name, so a misspelt key in ``models.building.tracking`` cannot silently drop a section."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    model_name: str | None = None
    version: str | int | None = None
    trained_at: str | None = None
    synthetic: bool = False
    intended_use: str | None = None
    users: str | None = None
    out_of_scope: list[str] | None = None
    data: dict[str, Any] | None = None
    label: dict[str, Any] | None = None
    label_counts: dict[str, Any] | None = None
    predictors: list[Any] | None = None  # (name, driver, modifiable, direction) or dicts
    predictors_note: str | None = None
    missing: Any = None  # str | DataFrame | list[dict]
    validation: str | list[str] | None = None
    sample_size: dict[str, Any] | None = None  # models.building.sample_size.SampleSize.to_dict()
    uncertainty: dict[str, Any] | None = None  # method, B, prior weight, update, instability
    metrics: dict[str, Any] | None = None  # name -> (point, lo, hi) | float
    oracle: dict[str, Any] | None = None
    candidates: Any = None  # DataFrame | list[dict]
    protocol: str | None = None  # "cv" | "holdout"
    learning_curve: Any = None  # DataFrame
    transport: Any = None  # DataFrame
    decision_curve: Any = None  # str | DataFrame
    subgroups: Any = None
    subgroups_note: str | None = None
    fairness: Any = None
    fairness_gaps: Any = None
    bands: Any = None
    band_config: dict[str, Any] | None = None
    bands_note: str | None = None
    explanations: dict[str, float] | None = None
    explanation_method: str | None = None
    driver_rank_spearman: float | None = None
    stability: Any = None  # DataFrame (models.building.stability.risk_steps)
    weekly: Any = None  # the weekly warning's figures
    images: dict[str, Any] | None = None  # title -> path | Image | (section, path | Image)
    limitations: list[str] | None = None

    @classmethod
    def of(cls, info: CardInfo | Mapping[str, Any]) -> CardInfo:
        return info if isinstance(info, CardInfo) else cls.model_validate(dict(info))


SECTIONS: tuple[str, ...] = (
    "Intended use and users",
    "Data and dates",
    "Label",
    "Predictors",
    "Missing data",
    "Validation method",
    "Sample size and uncertainty",
    "Performance",
    "Subgroups",
    "Fairness at the band thresholds",
    "Thresholds and risk bands",
    "Explanations",
    "Weekly early warning",
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

# A card is a list of sections; a section is a list of blocks, each rendered to both formats.
Block = tuple  # ("p", str) | ("ul", list[str]) | ("table", DataFrame) | ("img", title, path)


# ----------------------------------------------------------------------------- formatting
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


def _intended_use(info: CardInfo) -> list[Block]:
    blocks: list[Block] = [
        ("p", info.intended_use or DEFAULT_INTENDED_USE),
        ("p", "Users: " + (info.users or DEFAULT_USERS)),
    ]
    if info.out_of_scope:
        blocks += [("p", "Out of scope:"), ("ul", [_fmt(v) for v in info.out_of_scope])]
    return blocks


def _data(info: CardInfo) -> list[Block]:
    data = info.data or {}
    if not data:
        return [("p", NOT_RECORDED)]
    labels = {
        "source": "Source",
        "n_admissions": "Admissions",
        "n_labelled": "Labelled clients (sample size)",
        "date_range": "Dates",
        "digest": "Data digest (SHA-256)",
    }
    shown = {**data}
    if isinstance(shown.get("date_range"), tuple | list) and len(shown["date_range"]) == 2:
        shown["date_range"] = f"{shown['date_range'][0]} to {shown['date_range'][1]}"
    items = [f"{labels[k]}: {_fmt(shown[k])}" for k in labels if k in data]
    items += [f"{k}: {_fmt(v)}" for k, v in data.items() if k not in labels]
    return [("ul", items)]


def _label(info: CardInfo) -> list[Block]:
    label = info.label or {}
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
    counts = info.label_counts
    if counts:
        rows = [(LABEL_COUNT_WORDS.get(k, k.replace("_", " ")), v) for k, v in counts.items()]
        blocks += [
            ("p", "Admissions and rating rows by what the label rule made of them:"),
            ("table", pd.DataFrame(rows, columns=["what", "count"])),
        ]
    return blocks


LABEL_COUNT_WORDS = {
    "admissions": "admissions",
    "labelled": "labelled",
    "low": "labelled: low alliance",
    "not_low": "labelled: not low",
    "unlabelled": "unlabelled",
    "unlabelled_no_valid_rating": "unlabelled: no valid rating",
    "unlabelled_too_few_weeks": "unlabelled: too few rated weeks",
    "early_leavers": "early leavers (counted apart, never low alliance)",
    "ratings": "week 1-3 rating rows used",
    "void_ratings": "void rating rows (more than 2 items missing)",
    "ratings_ignored": "rating rows ignored (outside weeks 1-3, or an unknown rater)",
}


def _predictors(info: CardInfo) -> list[Block]:
    preds = info.predictors
    blocks: list[Block] = []
    if info.predictors_note:
        blocks.append(("p", info.predictors_note))
    if not preds:
        return blocks or [("p", NOT_RECORDED)]
    cols = ["name", "driver", "modifiable", "direction"]
    return blocks + [("table", _table(preds, None if isinstance(preds[0], Mapping) else cols))]


def _validation(info: CardInfo) -> list[Block]:
    return _text_or_table(info.validation)


def _metrics_table(info: CardInfo) -> pd.DataFrame:
    oracle = info.oracle or {}
    rows = []
    for name, value in info.metrics.items():
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


def _sample_size(info: CardInfo) -> list[Block]:
    """Riley et al. 2020's minimum sample size for this data, what was done about it, and how
    uncertain each client's risk is (Riley & Collins 2023)."""
    blocks: list[Block] = []
    ss = info.sample_size
    if ss:
        verdict = (
            "This dataset meets it."
            if ss.get("enough")
            else "This dataset is below it, so the ridge shrunk towards zero was not a default "
            "candidate: the anchored ridge (shrunk towards published effects) replaced it."
        )
        blocks.append(
            (
                "p",
                f"Minimum sample size (Riley et al. 2020, BMJ 368:m441) for a new model with "
                f"{ss['parameters']} parameters at prevalence {ss['prevalence']:.3f} and an "
                f"anticipated Cox-Snell R2 of {ss['r2_cs']:.3f} (from {ss['r2_source']}): "
                f"{ss['minimum_n']:,} (expected shrinkage >= 0.9: {ss['n_shrinkage']:,}; optimism "
                f"in Nagelkerke R2 <= 0.05: {ss['n_optimism']:,}; overall risk within +-0.05: "
                f"{ss['n_overall_risk']:,}). Labelled clients here: {ss['n']:,}. {verdict} At this "
                f"n a model with that many parameters can expect a shrinkage of "
                f"{ss['expected_shrinkage']:.2f}."
                + (
                    f" Individuals' risks from an unpenalised model of this size would be off by "
                    f"about {100 * ss['expected_mape']:.0f} points on average (van Smeden et al. "
                    f"2019, Stat Methods Med Res 28:2455"
                    f"{'; extrapolated above the 30 parameters it was fitted for' if ss.get('mape_extrapolated') else ''}"
                    f"); a mean error of 5 points needs about {ss['n_mape']:,} clients."
                    if "expected_mape" in ss
                    else ""
                ),
            )
        )
    unc = info.uncertainty
    if unc and unc.get("update_method"):
        blocks.append(
            (
                "p",
                f"Updated from an existing model ({unc.get('updated_from') or 'given'}) instead of "
                f"fitting a new one. Method chosen by closed testing (Vergouwe et al. 2017, "
                f"likelihood-ratio tests at 5%): {unc['update_method']}. {unc.get('update_why') or ''}",
            )
        )
    if unc and unc.get("method"):
        weight = (
            f" The prior ({unc['prior']}) was given weight t = {unc['prior_weight']} by nested "
            "cross-validation (0 = ignored, 1 = taken at face value)."
            if unc.get("prior_weight") is not None
            else ""
        )
        blocks.append(
            (
                "p",
                f"Each client's risk comes with a 95% uncertainty interval from {unc['B']} refits "
                f"of the model ({unc['method']}; penalty and preprocessing held at the tuned "
                f"values, so the spread from tuning itself is left out). Mean absolute prediction "
                f"error of individuals (mean |refit risk - risk|): "
                f"{100 * unc.get('mape', float('nan')):.1f} points (95th percentile over clients "
                f"{100 * unc.get('mape_p95', float('nan')):.1f}); median interval width "
                f"{100 * unc.get('median_width', float('nan')):.1f} points.{weight}",
            )
        )
    elif unc:
        blocks.append(("p", "This model kind states no per-client uncertainty interval."))
    return blocks or [("p", NOT_RECORDED)]


def _performance(info: CardInfo) -> list[Block]:
    blocks: list[Block] = []
    if info.metrics:
        blocks.append(("p", _performance_heading(info.protocol)))
        blocks.append(("table", _metrics_table(info)))
        if info.oracle:
            blocks.append(("p", "Oracle = the simulator's true risk: the best any model can do."))
    if info.candidates is not None:
        blocks += [("p", "Candidate models:"), ("table", _table(info.candidates))]
    if info.decision_curve is not None:
        blocks += [("p", "Clinical utility (net benefit):")] + _text_or_table(info.decision_curve)
    for key, note in (("learning_curve", LEARNING_CURVE_NOTE), ("transport", TRANSPORT_NOTE)):
        frame = getattr(info, key)
        if frame is not None and len(frame):
            blocks += [("p", note), ("table", _table(frame))]
    return blocks or [("p", NOT_RECORDED)]


LEARNING_CURVE_NOTE = (
    "Learning curve of this data: the champion's kind evaluated the same way on fractions of the "
    "training admissions (fraction 1 = the figures above). A curve still falling at 1 says more "
    "admissions would still help."
)
TRANSPORT_NOTE = (
    "Transport to a new service (leave-one-service-out, internal-external validation): for each "
    "service, a model of the champion's kind trained on all the other services and scored on that "
    "one (AUROC with its cluster-bootstrap 95% CI). Calibration intercept far from 0 means that "
    "service's rate differs from the others'."
)


def _performance_heading(protocol: str | None) -> str:
    if protocol == "cv":
        return (
            "Out-of-fold performance (repeated grouped cross-validation on all labelled "
            "admissions) with cluster-bootstrap 95% CIs:"
        )
    if protocol == "holdout":
        return "Held-out performance (grouped held-out split) with cluster-bootstrap 95% CIs:"
    return "Performance with percentile bootstrap 95% CIs:"


def _subgroups(info: CardInfo) -> list[Block]:
    frame = info.subgroups
    blocks: list[Block] = []
    if info.subgroups_note:
        blocks.append(("p", info.subgroups_note))
    if frame is None or len(frame) == 0:
        return blocks or [("p", NOT_RECORDED)]
    blocks.append(("table", _table(frame)))
    if "suppressed" in frame and bool(frame["suppressed"].any()):
        blocks.append(("p", "Suppressed rows: too few clients or events to report safely."))
    return blocks


def _fairness(info: CardInfo) -> list[Block]:
    """models.building.fairness's table and gaps, in readable form; its plots come as images."""
    from models.building import fairness as F

    table = info.fairness
    if table is None or len(table) == 0:
        return [("p", NOT_RECORDED)]
    return [
        ("p", F.CARD_NOTE),
        ("table", F.display_table(table)),
        ("p", "Largest gap between levels of each subgroup (highest minus lowest, 95% CI):"),
        (
            "table",
            F.display_gaps(
                info.fairness_gaps if info.fairness_gaps is not None else F.largest_gaps(table)
            ),
        ),
    ]


def _bands(info: CardInfo) -> list[Block]:
    blocks: list[Block] = []
    cfg = info.band_config
    if cfg:
        blocks.append(
            (
                "p",
                f"Bands: low below {_fmt(cfg.get('moderate_from'))}, moderate from "
                f"{_fmt(cfg.get('moderate_from'))}, high from {_fmt(cfg.get('high_from'))}.",
            )
        )
    if info.bands_note:
        blocks.append(("p", info.bands_note))
    if info.bands is not None:
        blocks.append(("table", _table(info.bands)))
    return blocks or [("p", NOT_RECORDED)]


def _explanations(info: CardInfo) -> list[Block]:
    blocks: list[Block] = []
    if info.explanation_method:
        blocks.append(("p", info.explanation_method))
    expl = info.explanations
    if expl:
        ranked = sorted(expl.items(), key=lambda kv: kv[1], reverse=True)
        blocks.append(("table", pd.DataFrame(ranked, columns=["driver group", "mean |SHAP|"])))
    rho = info.driver_rank_spearman
    if rho is not None:
        blocks.append(
            (
                "p",
                f"Spearman correlation of the driver ranking with the simulator's truth: {_fmt(rho)}.",
            )
        )
    stab = info.stability
    if stab is not None and len(stab):
        blocks.append(("p", STABILITY_NOTE))
        if "verdict" in stab:
            failed = list(stab.loc[stab["verdict"] != "PASS", "scale"])
            blocks.append(
                (
                    "p",
                    f"{len(stab) - len(failed)} of {len(stab)} scales PASS"
                    + (f"; FAIL: {', '.join(failed)}." if failed else "."),
                )
            )
        blocks.append(("table", _table(stab.drop(columns=["meets_goal"], errors="ignore"))))
    return blocks or [("p", NOT_RECORDED)]


STABILITY_NOTE = (
    "Smooth risk: change of the risk (percentage points) when one scale score moves by one step "
    "within its measurement error (1 point on a TCU scale or the GHQ-12, 0.1 on a Brief COPE "
    "mean, 1 on a 1-7 attachment rating), 99th percentile and maximum over clients, against its "
    "bound: at most 2 for 99% of clients and 4 for any on a questionnaire scale; on a single-item "
    "1-7 rating, 1.25x the literature-sized SYNTHETIC truth's own move for the same step "
    "(models.building.stability)."
)


WEEKLY_INTRO = (
    "After each weekly WAI-S rating (weeks 1 and 2) two stacked logistic models update the "
    "admission risk: (a) the risk of the label itself (low alliance over weeks 1-3) and (b) the "
    "risk of a low alliance in the weeks still to come. Inputs: the admission model's calibrated "
    "log-odds (out-of-fold for the training clients) and each rater's item mean per rated week, "
    "with missing indicators; a lower rating never lowers the risk (constrained). (b) is the "
    "headline of the warning. Out-of-fold figures (grouped CV, tuning inside every fold) with "
    "cluster-bootstrap 95% CIs, beside the admission risk on the same clients and outcome."
)
WEEKLY_LABEL_NOTE = (
    "After week K the label partly consists of what was already observed: (a) is scored on an "
    "outcome that already contains the week-K rating, so its gain over the admission risk is "
    "partly read off, not predicted. Judge the warning by (b)."
)


def _weekly(info: CardInfo) -> list[Block]:
    """Issue 19: the weekly models' headline figures, the markers' thresholds, the statement
    about the label after week K."""
    w = info.weekly
    if not w:
        return [("p", "No weekly models in this version (trained before issue 19).")]
    band = w.get("band_quantile")
    rup = w.get("rupture_threshold") or {}
    blocks: list[Block] = [
        ("p", WEEKLY_INTRO),
        ("table", _table(w["table"])),
        ("p", WEEKLY_LABEL_NOTE),
        (
            "p",
            f"Not-on-track signal: the week-K rating of the label's rater(s) "
            f"({', '.join(w.get('band_raters') or [])}) below the {100 * band:.0f}th percentile of "
            f"week-K ratings among training clients in the same bin of admission risk "
            f"({w.get('band_bins')} equal-frequency bins; an expected-response band in the manner of OQ's expected treatment "
            "response, Whipple et al. 2003, Shimokawa et al. 2010). Sensitivity and false-alarm "
            "rate above are for (b)'s outcome, out of fold (bands from the training folds only).",
        ),
        (
            "p",
            "Rupture marker: a rater's rating falling from one week to the next by more than the "
            "reliable-change threshold, 1.96 x sqrt(2) x SEM, SEM = SD x sqrt(1 - 0.90) (Jacobson "
            "& Truax 1991; WAI-S alpha 0.90 unverified): "
            + ", ".join(f"{r} {v:.2f}" for r, v in rup.items())
            + " item-mean points. Discrepancy: client minus counsellor item mean in one week, "
            f"flagged beyond {w.get('discrepancy_threshold', float('nan')):.2f} points (1.96 x "
            "the two ratings' combined SEM). Actions and sources: rupture repair (Safran, Muran "
            "& Eubanks-Carter 2011; Eubanks et al. 2018), not-on-track feedback (Whipple et al. "
            "2003; Shimokawa et al. 2010), session feedback (PCOMS, Duncan et al. 2003).",
        ),
    ]
    if w.get("coefficients") is not None and len(w["coefficients"]):
        blocks += [("p", "Fitted stacked models (gamma per item-mean point):")]
        blocks += [("table", _table(w["coefficients"]))]
    return blocks


def _limitations(info: CardInfo) -> list[Block]:
    items = [str(v) for v in info.limitations or []]
    if info.synthetic:
        items.insert(
            0, "Trained and evaluated on synthetic data only; not validated on real clients."
        )
    return [("ul", items)] if items else [("p", NOT_RECORDED)]


def _images_by_section(info: CardInfo) -> dict[str, list[Block]]:
    out: dict[str, list[Block]] = {}
    for title, value in (info.images or {}).items():
        section, path = value if isinstance(value, tuple | list) else ("Performance", value)
        if section not in SECTIONS:
            section = "Performance"
        img = path if isinstance(path, Image) else Path(path)
        out.setdefault(section, []).append(("img", str(title), img))
    return out


def build_sections(info: CardInfo | Mapping[str, Any]) -> list[tuple[str, list[Block]]]:
    """The card as (heading, blocks) pairs, shared by both renderers so they cannot drift apart."""
    info = CardInfo.of(info)
    images = _images_by_section(info)
    builders = {
        "Intended use and users": lambda: _intended_use(info),
        "Data and dates": lambda: _data(info),
        "Label": lambda: _label(info),
        "Predictors": lambda: _predictors(info),
        "Missing data": lambda: _text_or_table(info.missing),
        "Validation method": lambda: _validation(info),
        "Sample size and uncertainty": lambda: _sample_size(info),
        "Performance": lambda: _performance(info),
        "Subgroups": lambda: _subgroups(info),
        "Fairness at the band thresholds": lambda: _fairness(info),
        "Thresholds and risk bands": lambda: _bands(info),
        "Explanations": lambda: _explanations(info),
        "Weekly early warning": lambda: _weekly(info),
        "Limitations": lambda: _limitations(info),
    }
    sections = [(SYNTHETIC_HEADING, _synthetic_section())] if info.synthetic else []
    for heading in SECTIONS:
        blocks = builders[heading]()
        extra = images.get(heading, [])
        if extra and len(blocks) == 1 and blocks[0][:2] == ("p", NOT_RECORDED):
            blocks = []
        sections.append((heading, blocks + extra))
    return sections


# ----------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class Image:
    """A figure read into memory (a data URI), so a card can be rendered again after the files
    it came from are gone (``embed_images``; the card is re-rendered once the version is known)."""

    title: str
    name: str
    uri: str | None  # None: the file was missing or not an image

    @classmethod
    def read(cls, title: str, path: Path) -> Image:
        return cls(title, path.name, data_uri(path))


def embed_images(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` with every image path read into an ``Image`` (the files may then be deleted)."""
    images = {}
    for title, value in (info.get("images") or {}).items():
        section, path = value if isinstance(value, tuple | list) else ("Performance", value)
        images[title] = (
            section,
            path if isinstance(path, Image) else Image.read(title, Path(path)),
        )
    return {**info, "images": images}


def _view(block: Block) -> dict[str, Any]:
    """A block as the templates read it."""
    kind = block[0]
    if kind == "p":
        return {"kind": "p", "text": str(block[1])}
    if kind == "ul":
        return {"kind": "ul", "entries": [str(i) for i in block[1]]}
    if kind == "table":
        return {"kind": "table", "frame": block[1]}
    title, img = block[1], block[2]
    if not isinstance(img, Image):
        img = Image.read(title, Path(img))
    return {
        "kind": "img",
        "title": title,
        "name": img.name,
        "uri": img.uri,
        "exists": bool(img.uri),
    }


def _header(info: CardInfo) -> tuple[str, str]:
    title = f"Model card: {_fmt(info.model_name or 'alliance-risk')}"
    if info.version is not None:
        title += f" version {_fmt(info.version)}"
    elif info.trained_at:
        title += " (not yet registered)"
    sub = f"Trained {_fmt(info.trained_at)}." if info.trained_at else ""
    return title, (sub + " Reporting standard: TRIPOD+AI.").strip()


def render_model_card(info: CardInfo | Mapping[str, Any]) -> tuple[str, str]:
    """Render the card from reporting/templates/model_card.{md,html}.j2; returns (markdown, html).
    See the module docstring for ``info`` keys.

    Markdown image links use the file name only, so log the images next to the card."""
    from reporting import render

    info = CardInfo.of(info)
    title, sub = _header(info)
    sections = [(h, [_view(b) for b in blocks]) for h, blocks in build_sections(info)]
    context = {
        "title": title,
        "subtitle": sub,
        "sections": sections,
        "synthetic_heading": SYNTHETIC_HEADING,
    }
    return render("model_card.md.j2", **context), render("model_card.html.j2", **context)
