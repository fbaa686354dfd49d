"""Early warning after each weekly WAI-S rating (issue 19, items 2 and 3), in plain numpy.

The service, the batch scorer and the page score through this module; it imports no pandas,
scikit-learn or MLflow (models/scoring rule, docs/design.md). The numbers it needs are stored in
the scorer artifact as ``ScoringModel.weekly`` (a dict of plain lists, saved in model.json and
covered by its checksum; fitted by ``models.building.weekly.fit_weekly``).

The updated risk. After week K (K = 1, 2) two stacked logistic models take the admission model's
calibrated log-odds m and the weekly ratings up to week K::

    logit p = alpha + beta * m + sum_j gamma_j * r_j + sum_j delta_j * missing_j

r_j is the WAI-S item mean (items 4 and 10 reverse-scored, as ``features.labels`` scores it) of one
rater (client, counsellor) in one week w <= K; a rating that is absent or void (more than 2 items
missing) is set to the typical rating and its indicator missing_j = 1. gamma_j <= 0 (a lower
rating never lowers the risk) and beta >= 0 were bounds of the fit.
- ``risk``: the label itself (low alliance over weeks 1-3, the model's label definition). After
  week K the label partly consists of what was already observed.
- ``risk_remaining``: a low alliance in the weeks still to come (K+1..3, the same rule on those
  weeks only): the headline of the warning.
As of week 3 the K = 2 models are used (week-3 ratings feed the markers only) and nothing remains.

Uncertainty (issue 17 item 4): every stated risk carries a 95% interval. Each stacked model
stores B draws of (alpha, beta, gamma, delta) (``draws``: its Laplace approximation at the tuned
penalty, projected onto the bounds; ``models.building.weekly``), B = the admission model's refits.
Draw b of an updated risk is sigmoid(alpha_b + beta_b m_b + gamma_b . r + delta_b . missing), m_b
the admission model's calibrated log-odds under its own refit b (``ScoringModel.refit_log_odds``),
so both models' uncertainty enters; the interval is the 2.5th-97.5th percentiles of the B draws,
widened to contain the risk (``models.scoring.scorer.interval_of_draws``, the admission rule).
With no rating it is the admission interval exactly. A model fitted before the draws, or whose
admission model has no refits (LightGBM), states none for an updated risk (NaN / None).

Contributions (exact, like the admission explanation): with the admission groups G_g (they add up
to m - m0, m0 the typical client's log-odds) and the typical ratings t_j,

    logit risk = [alpha + beta m0 + sum gamma_j t_j] + sum_g beta G_g
                 + [sum_j gamma_j (r_j - t_j) + sum_j delta_j missing_j]

the first bracket is the typical client's updated log-odds (rated typically in every week), the
intake groups are the admission ones times beta, and the last bracket is the "ratings" group.
Everything adds up to the updated log-odds; points as in ``models.scoring.explain.to_points``.

Markers (item 3; actions and sources in weekly_actions.csv):
- not-on-track signal: the week-K rating of the label's rater(s) below the expected-response band
  given the admission risk: the ``band.quantile`` (10%) quantile of week-K ratings among training
  clients in the same bin of admission risk (in the manner of OQ's expected treatment response,
  Lambert et al.; Whipple et al. 2003);
- rupture: a rater's rating dropping from one week to the next by more than the reliable-change
  threshold (``features.instruments.reliable_change``, the one definition of the measurement error);
- discrepancy: client minus counsellor item mean in the same week, flagged when its size exceeds
  the two ratings' measurement error (``features.instruments.reliable_difference``).

Interface (see each function): ``validate_ratings`` (field-named errors for 422s),
``rating_array`` (ratings -> week x rater item means), ``update`` (one record -> dict),
``update_matrix`` (n records, vectorised, for batch scoring).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from features.catalog import DRIVER_GROUPS
from features.instruments import WAI_MAX_MISSING, WAI_S
from models.scoring.explain import MIN_POINTS, Explanation, explain_matrix, to_points
from models.scoring.scorer import UNCERTAINTY_LEVEL, ScoringModel, interval_of_draws, sigmoid

HERE = Path(__file__).parent
WEEKS = (1, 2, 3)
RATERS = ("client", "counsellor")
MODEL_WEEKS = (1, 2)  # weeks after which an updated model exists
ITEM_CODES = WAI_S.item_codes()  # wai_01 ... wai_12
RATINGS_GROUP = "ratings"
GROUPS = (*DRIVER_GROUPS, RATINGS_GROUP)
TARGETS = ("label", "remaining")  # (a) the label, (b) low alliance in the weeks still to come
MARKERS = ("signal", "rupture", "discrepancy")


def columns(week: int) -> list[tuple[int, str]]:
    """The (week, rater) rating columns of the week-K models, in the order of gamma and delta."""
    return [(w, r) for w in range(1, week + 1) for r in RATERS]


# --------------------------------------------------------------------------------------------
# Ratings: validation and item means


def _number(v: Any) -> float | None:
    """A JSON number as float; None for missing (None or NaN); raises TypeError for others."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError
    try:
        f = float(v)
    except OverflowError:  # a JSON integer too large for a float: out of range, not a 500
        raise TypeError from None
    return None if math.isnan(f) else f


def validate_ratings(ratings: Any) -> list[dict[str, str]]:
    """Field-named errors of a ``ratings`` list, [] when it is valid.

    Each error is {"field": "ratings[i].<key>" (or "ratings"), "message": ...}; the API answers
    422 with them. A rating is a mapping with ``week`` (1, 2 or 3), ``rater`` ("client" or
    "counsellor") and either ``items`` (a mapping wai_01..wai_12 -> whole number 1-7 or null; at
    most 2 missing, data contract) or ``item_mean`` (1-7, the mean after reverse-scoring items 4
    and 10), not both. One rating per week and rater.
    """
    if ratings is None:
        return []
    if not isinstance(ratings, Sequence) or isinstance(ratings, str | bytes):
        return [{"field": "ratings", "message": "must be a list of ratings"}]
    errors: list[dict[str, str]] = []
    seen: dict[tuple[Any, Any], int] = {}

    def err(i: int, key: str, msg: str) -> None:
        errors.append({"field": f"ratings[{i}]" + (f".{key}" if key else ""), "message": msg})

    for i, r in enumerate(ratings):
        if not isinstance(r, Mapping):
            err(i, "", "must be an object with week, rater and items or item_mean")
            continue
        unknown = sorted(set(r) - {"week", "rater", "items", "item_mean"})
        for k in unknown:
            err(i, str(k), "unknown field (expected week, rater, items or item_mean)")
        week, rater = r.get("week"), r.get("rater")
        if isinstance(week, bool) or week not in WEEKS:
            err(i, "week", "must be 1, 2 or 3")
        if rater not in RATERS:
            err(i, "rater", "must be 'client' or 'counsellor'")
        if week in WEEKS and rater in RATERS and not isinstance(week, bool):
            key = (int(week), rater)
            if key in seen:
                err(
                    i,
                    "week",
                    f"a second {rater} rating of week {week} (ratings[{seen[key]}] has one): "
                    "one rating per week and rater",
                )
            else:
                seen[key] = i
        has_items, has_mean = r.get("items") is not None, r.get("item_mean") is not None
        if has_items == has_mean:
            err(i, "items", "give either items (wai_01..wai_12) or item_mean, not both or neither")
            continue
        if has_mean:
            try:
                v = _number(r["item_mean"])
            except TypeError:
                v = -1.0
            if v is None or not WAI_S.low <= v <= WAI_S.high:
                err(i, "item_mean", "must be a number from 1 to 7")
            continue
        items = r["items"]
        if not isinstance(items, Mapping):
            err(i, "items", "must be an object wai_01..wai_12 -> 1-7")
            continue
        for k in sorted(set(items) - set(ITEM_CODES)):
            err(i, f"{k}", f"unknown item (expected {ITEM_CODES[0]}..{ITEM_CODES[-1]})")
        missing = 0
        for code in ITEM_CODES:
            try:
                v = _number(items.get(code))
            except TypeError:
                err(i, code, "must be a whole number from 1 to 7 or null")
                continue
            if v is None:
                missing += 1
            elif not (WAI_S.low <= v <= WAI_S.high and float(v).is_integer()):
                err(i, code, "must be a whole number from 1 to 7 or null")
        if missing > WAI_MAX_MISSING:
            err(
                i,
                "items",
                f"{missing} of 12 items missing: a rating with more than {WAI_MAX_MISSING} "
                "missing items is void (data contract)",
            )
    return errors


def item_mean(items: Mapping[str, Any]) -> float:
    """The WAI-S item mean of one rating's items after reverse-scoring (items 4 and 10: 8 - x),
    as ``features.scoring.score_wai`` computes it; NaN when void (more than 2 items missing)."""
    flip = WAI_S.low + WAI_S.high
    vals = []
    for item, code in zip(WAI_S.items, ITEM_CODES, strict=True):
        v = _number(items.get(code))
        if v is not None:
            vals.append(flip - v if item in WAI_S.reflected else v)
    if len(ITEM_CODES) - len(vals) > WAI_MAX_MISSING:
        return float("nan")
    return math.fsum(vals) / len(vals)  # whole numbers: the same float as np.mean, faster


def rating_array(
    ratings: Sequence[Mapping[str, Any]] | None, validated: bool = False
) -> np.ndarray:
    """Valid ratings -> a 3 x 2 array of item means (weeks 1-3 x client, counsellor), NaN where
    not rated. Call ``validate_ratings`` first: this raises ValueError on invalid input (unless
    ``validated``: the caller has just checked them, as the service does)."""
    errors = [] if validated else validate_ratings(ratings)
    if errors:
        raise ValueError("; ".join(f"{e['field']}: {e['message']}" for e in errors))
    out = np.full((len(WEEKS), len(RATERS)), np.nan)
    for r in ratings or []:
        mean = r.get("item_mean")
        v = float(mean) if mean is not None else item_mean(r["items"])
        out[int(r["week"]) - 1, RATERS.index(r["rater"])] = v
    return out


# --------------------------------------------------------------------------------------------
# The stored numbers


def rating_features(R: np.ndarray, week: int, typical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ratings minus typical, 0 where missing; missing indicators), n x 2K each, ``columns`` order."""
    cols = columns(week)
    V = np.column_stack([R[:, w - 1, RATERS.index(r)] for w, r in cols])
    T = np.array([typical[w - 1, RATERS.index(r)] for w, r in cols])
    miss = np.isnan(V)
    return np.where(miss, 0.0, V - T), miss.astype(float)


def stacked_parts(
    m: np.ndarray, R: np.ndarray, week: int, fit: Mapping[str, Any], typical: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(the intake part alpha + beta m + sum gamma_j t_j, the ratings group, beta) of one stacked
    model; their sum is the updated log-odds. Training uses it for its out-of-fold predictions,
    so the fitted and the served function are one."""
    D, miss = rating_features(R, week, typical)
    T = np.array([typical[w - 1, RATERS.index(r)] for w, r in columns(week)])
    g, d = np.asarray(fit["gamma"]), np.asarray(fit["delta"])
    intake = fit["alpha"] + fit["beta"] * np.asarray(m, dtype=float) + float(g @ T)
    return intake, D @ g + miss @ d, float(fit["beta"])


def stacked_log_odds(
    m: np.ndarray, R: np.ndarray, week: int, fit: Mapping[str, Any], typical: np.ndarray
) -> np.ndarray:
    intake, ratings, _ = stacked_parts(m, R, week, fit, typical)
    return intake + ratings


# --------------------------------------------------------------------------------------------
# Actions


@cache
def actions() -> dict[str, list[dict[str, str]]]:
    """Actions per marker (signal, rupture, discrepancy) with sources (weekly_actions.csv)."""
    out: dict[str, list[dict[str, str]]] = {}
    with (HERE / "weekly_actions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["marker"] not in MARKERS:
                raise ValueError(f"weekly_actions.csv names {row['marker']!r}, not a marker")
            out.setdefault(row["marker"], []).append(
                {"action": row["action"], "evidence": row["evidence"], "source": row["source"]}
            )
    return out


# --------------------------------------------------------------------------------------------
# The vectorised core


@dataclass(frozen=True)
class WeeklyScores:
    """Updated scores of n records; group arrays are n x len(GROUPS) (DRIVER_GROUPS, "ratings")."""

    as_of_week: np.ndarray  # int: latest week <= the requested one with a valid rating, 0 = none
    risk: np.ndarray  # the label (weeks 1-3), updated; the admission risk where as_of_week = 0
    risk_at_admission: np.ndarray
    risk_remaining: np.ndarray  # low alliance in weeks as_of_week+1..3; NaN as of week 3
    # 95% uncertainty intervals (``_draw_risks``): the admission interval exactly where
    # as_of_week = 0; NaN where none is stated (no draws in the model, LightGBM, as of week 3)
    risk_low: np.ndarray
    risk_high: np.ndarray
    risk_remaining_low: np.ndarray
    risk_remaining_high: np.ndarray
    typical_risk: np.ndarray  # base of the drivers: the typical client's (updated) risk
    log_odds: np.ndarray  # group contributions in log-odds; rows add up to logit(risk) - base
    points: np.ndarray  # the same in probability points; rows add up to risk - typical_risk
    signal: np.ndarray  # bool
    band_lower: np.ndarray  # n x 2 (client, counsellor): lower edge of the expected band, week K
    rupture: np.ndarray  # bool n x 3 x 2: a reliable drop into that week (week 1 always False)
    discrepancy: np.ndarray  # n x 3: client - counsellor item mean per week (NaN unless both)
    discrepancy_flag: np.ndarray  # bool n x 3


def _as_of(R: np.ndarray, week: int) -> np.ndarray:
    rated = ~np.isnan(R[:, :week, :]).all(axis=2)  # n x week
    idx = np.arange(1, week + 1)
    return np.where(rated, idx, 0).max(axis=1) if week else np.zeros(len(R), dtype=int)


def band_lower(spec: Mapping[str, Any], m: np.ndarray, week: int) -> np.ndarray:
    """n x 2: the lower edge of the expected band of week ``week`` ratings for client and
    counsellor, given the admission log-odds m (NaN where the training data had no such band)."""
    band = spec["band"]
    b = np.searchsorted(band["edges"], np.asarray(m, dtype=float), side="right")
    return np.column_stack([band["lower"][r][week - 1][b] for r in RATERS])


def update_matrix(
    model: ScoringModel,
    X: np.ndarray,
    R: np.ndarray,
    as_of_week: int,
    explanation: Explanation | None = None,
) -> WeeklyScores:
    """Updated risks, contributions and markers for n records.

    X: the model rows (n x p, ``features.rows``); R: n x 3 x 2 item means (weeks 1-3 x client,
    counsellor; NaN = not rated or void); ``as_of_week`` (0-3): ratings of later weeks are
    ignored. Each row's own as-of week is the latest week <= as_of_week with a valid rating; a
    row without one gets its admission score exactly. ``explanation``: ``explain_matrix(model,
    X)`` when already computed. Raises ValueError when the model has no weekly models.
    """
    spec = model.weekly
    if spec is None:
        raise ValueError("this model has no weekly models (trained before issue 19); retrain it")
    if as_of_week not in (0, *WEEKS):
        raise ValueError(f"as_of_week must be 0-3, not {as_of_week!r}")
    R = np.asarray(R, dtype=float).reshape(len(X), len(WEEKS), len(RATERS))
    ex = explanation if explanation is not None else explain_matrix(model, X)
    n = len(X)
    G = np.asarray(ex.log_odds, dtype=float)
    base_adm = _typical_log_odds(model, ex)
    m = G.sum(axis=1) + base_adm  # the admission log-odds, as its drivers add up
    K = _as_of(R, as_of_week)
    log_odds = np.zeros((n, len(GROUPS)))
    log_odds[:, : len(DRIVER_GROUPS)] = G
    base = np.broadcast_to(base_adm, (n,)).astype(float).copy()
    rem_lo = np.full(n, np.nan)
    typical = spec["typical"]
    draws: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in TARGETS}
    for week in MODEL_WEEKS:
        rows = (K == week) | ((K > week) & (week == MODEL_WEEKS[-1]))
        if not rows.any():
            continue
        fits = spec["models"][str(week)]
        # the rating features once per week for both targets (stacked_parts' sums, same order)
        D, miss = rating_features(R[rows], week, typical)
        T = np.array([typical[w - 1, RATERS.index(r)] for w, r in columns(week)])
        M = None  # the admission refits' calibrated log-odds of these rows (n_rows x B), once
        fit = fits["label"]
        if fit is not None:
            g, d, beta = fit["gamma"], fit["delta"], float(fit["beta"])
            gT = float(g @ T)
            # the typical client's updated log-odds: its intake part at the admission base
            base[rows] = fit["alpha"] + beta * base_adm[rows] + gT
            log_odds[rows, : len(DRIVER_GROUPS)] = beta * G[rows]
            log_odds[rows, -1] = D @ g + miss @ d
            P, M = _draw_risks(model, X, ex, rows, M, fit.get("draws"), D + T, miss)
            if P is not None:
                draws["label"].append((rows, P))
        rem = fits["remaining"]
        if rem is not None and week < 3:
            g, d = rem["gamma"], rem["delta"]
            intake = rem["alpha"] + rem["beta"] * m[rows] + float(g @ T)
            rem_lo[rows] = intake + (D @ g + miss @ d)
            P, M = _draw_risks(model, X, ex, rows, M, rem.get("draws"), D + T, miss)
            if P is not None:
                draws["remaining"].append((rows, P))
    risk, typical_risk, points = to_points(log_odds, base)
    no_rating = K == 0
    risk = np.where(no_rating, ex.risk, risk)  # the admission score, to the last bit
    # With no rating nothing remains observed: the weeks to come are weeks 1-3, the label itself.
    risk_remaining = np.where(no_rating, ex.risk, sigmoid(rem_lo))
    risk_remaining = np.where(K >= 3, np.nan, risk_remaining)

    # The 95% uncertainty intervals: the rule of the admission interval (interval_of_draws) on
    # the draws; with no rating the admission interval itself, as the risks are the admission one.
    low, high = _intervals(n, draws["label"], risk)
    rem_low, rem_high = _intervals(n, draws["remaining"], risk_remaining)
    # a week without a label model (too few outcomes in training) keeps the admission risk, so
    # its interval, widened to the risk as recomputed from its drivers
    unfitted = [w for w in MODEL_WEEKS if spec["models"][str(w)]["label"] is None]
    keep = np.isin(np.minimum(K, MODEL_WEEKS[-1]), unfitted) & ~no_rating
    low = np.where(keep, np.minimum(ex.risk_low, risk), low)
    high = np.where(keep, np.maximum(ex.risk_high, risk), high)
    low, high = np.where(no_rating, ex.risk_low, low), np.where(no_rating, ex.risk_high, high)
    rem_low = np.where(no_rating, ex.risk_low, rem_low)
    rem_high = np.where(no_rating, ex.risk_high, rem_high)

    # markers
    lower = np.full((n, len(RATERS)), np.nan)
    observed = np.full((n, len(RATERS)), np.nan)
    for week in WEEKS:
        rows = K == week
        if rows.any():
            lower[rows] = band_lower(spec, m[rows], week)
            observed[rows] = R[rows, week - 1, :]
    use = [RATERS.index(r) for r in spec["band"]["raters"]]
    with np.errstate(invalid="ignore"):
        below = observed < lower
    signal = below[:, use].any(axis=1)
    thr = np.array([spec["rupture"]["threshold"][r] for r in RATERS])
    weeks_seen = np.arange(1, len(WEEKS) + 1)[None, :, None] <= K[:, None, None]
    drop = np.zeros_like(R)
    drop[:, 1:, :] = R[:, :-1, :] - R[:, 1:, :]
    with np.errstate(invalid="ignore"):
        rupture = (drop > thr[None, None, :]) & weeks_seen
    disc = R[:, :, 0] - R[:, :, 1]
    disc = np.where(weeks_seen[:, :, 0], disc, np.nan)
    with np.errstate(invalid="ignore"):
        disc_flag = np.abs(disc) > spec["discrepancy"]["threshold"]
    return WeeklyScores(
        as_of_week=K,
        risk=risk,
        risk_at_admission=ex.risk,
        risk_remaining=risk_remaining,
        risk_low=low,
        risk_high=high,
        risk_remaining_low=rem_low,
        risk_remaining_high=rem_high,
        typical_risk=np.where(no_rating, ex.typical_risk, typical_risk),
        log_odds=log_odds,
        points=points,
        signal=signal,
        band_lower=lower,
        rupture=rupture,
        discrepancy=disc,
        discrepancy_flag=disc_flag,
    )


def _draw_risks(
    model: ScoringModel,
    X: np.ndarray,
    ex: Explanation,
    rows: np.ndarray,
    M: np.ndarray | None,
    d: Mapping[str, np.ndarray] | None,
    V: np.ndarray,
    miss: np.ndarray,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(risks of ``rows`` under the B paired draws, n_rows x B, or None; the admission refits'
    log-odds M of these rows: the explanation's when it kept them, else computed here, once per
    week). Draw b: alpha_b + beta_b m_b + gamma_b . r +
    delta_b . missing, with m_b the admission model's calibrated log-odds under its refit b and r
    the ratings (the typical one where missing: V). None when the stacked model carries no draws
    (fitted before them) or the admission model no refits (LightGBM)."""
    if d is None:
        return None, M
    if M is None:
        full = ex.refit_log_odds
        M = full[rows] if full is not None else model.refit_log_odds(X[rows])
        if M is None:
            return None, None
    B = min(M.shape[1], len(d["alpha"]))
    # einsum without BLAS, as refit_margins: a row's figures do not depend on the batch around it
    lo = (
        d["alpha"][:B]
        + d["beta"][:B] * M[:, :B]
        + np.einsum("ij,bj->ib", V, d["gamma"][:B], optimize=False)
        + np.einsum("ij,bj->ib", miss, d["delta"][:B], optimize=False)
    )
    return sigmoid(lo), M


def _intervals(
    n: int, parts: list[tuple[np.ndarray, np.ndarray]], risk: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of n rows from the draws' risks of some of them (NaN elsewhere), by the
    admission interval's rule (``interval_of_draws``: quantiles, widened to contain the risk)."""
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    for rows, P in parts:
        low[rows], high[rows] = interval_of_draws(P, risk[rows])
    return low, high


def _typical_log_odds(model: ScoringModel, ex: Explanation) -> np.ndarray:
    """The admission base (the typical client's calibrated log-odds), as one value per row."""
    from models.scoring.explain import typical_log_odds

    key, value = model.__dict__.get("_typical_lo", (None, None))
    ref = id(model.reference)
    if key != ref:
        value = typical_log_odds(model)
        model.__dict__["_typical_lo"] = (ref, value)
    return np.full(len(ex.risk), value)


# --------------------------------------------------------------------------------------------
# One record


def _effect(points: float) -> str:
    return "raises" if points >= MIN_POINTS else "lowers" if points <= -MIN_POINTS else "none"


def _band_text(p: float) -> str:
    return f"{100 * p:.0f}%"


def update(
    model: ScoringModel,
    row: np.ndarray,
    ratings: Sequence[Mapping[str, Any]] | None,
    explanation: Explanation | None = None,
    validated: bool = False,
) -> dict[str, Any]:
    """The weekly update of one scored record.

    ``row``: its model row (1 x p, ``features.rows.record_row``); ``ratings``: a list of
    {week, rater, items | item_mean} (``validate_ratings`` first; this raises ValueError on an
    invalid list; ``validated=True`` skips that check when the caller has just made it);
    ``explanation``: ``explain_matrix(model, row)`` if the caller has it. The
    as-of week is the latest rated week. With no (valid) rating every number is the admission
    score's, exactly. Returns::

        as_of_week: 0-3; model_week: the stacked models used (0 = none, 1, 2)
        risk: updated risk of the label (low alliance over weeks 1-3)
        risk_at_admission: the admission risk (= explain_row's "risk")
        risk_remaining: risk of a low alliance in weeks as_of_week+1..3 (None as of week 3)
        risk_interval, risk_remaining_interval: {low, high, level} the 95% uncertainty interval
            of risk and of risk_remaining (with no rating the admission interval); None when
            none is stated (a model without draws, LightGBM, risk_remaining None)
        remaining_weeks: [as_of_week+1, ..., 3]
        typical_risk: the base of the drivers (the typical client's risk, rated typically)
        drivers: [{driver, log_odds, points, effect}] for every intake driver group (admission
            contribution x beta) and "ratings", largest |points| first; log_odds add up to
            logit(risk) - logit(typical_risk), points to risk - typical_risk
        ratings: [{week, rater, item_mean}] the valid ratings used (item means after reverse-scoring)
        signal: {flag, week, expected_band: {rater: {lower, observed, below}}, raters, why, actions}
        rupture: {flag, weeks, raters, drops: [{rater, week, from, to, drop}], threshold, why,
            actions}
        discrepancy: {flag, week, client, counsellor, difference, threshold, why, actions}
        label_note: what the label after week K consists of
    """
    R = rating_array(ratings, validated)[None]
    row = np.atleast_2d(np.asarray(row, dtype=float))
    ex = explanation if explanation is not None else explain_matrix(model, row)
    asked = int(max((int(r["week"]) for r in ratings or []), default=0))
    s = update_matrix(model, row, R, asked, ex)
    spec = model.weekly
    K = int(s.as_of_week[0])
    drivers = [
        {
            "driver": g,
            "log_odds": float(s.log_odds[0, j]),
            "points": float(s.points[0, j]),
            "effect": _effect(float(s.points[0, j])),
        }
        for j, g in enumerate(GROUPS)
        if g != RATINGS_GROUP or K > 0
    ]
    drivers.sort(key=lambda d: -abs(d["points"]))
    rr = s.risk_remaining[0]
    used = [
        {"week": w, "rater": r, "item_mean": float(R[0, w - 1, j])}
        for w in WEEKS
        for j, r in enumerate(RATERS)
        if w <= K and not np.isnan(R[0, w - 1, j])
    ]
    return {
        "as_of_week": K,
        "model_week": min(K, MODEL_WEEKS[-1]),
        "risk": float(s.risk[0]),
        "risk_at_admission": float(s.risk_at_admission[0]),
        "risk_remaining": None if np.isnan(rr) else float(rr),
        "risk_interval": _interval(s.risk_low[0], s.risk_high[0]),
        "risk_remaining_interval": _interval(s.risk_remaining_low[0], s.risk_remaining_high[0]),
        "remaining_weeks": list(range(K + 1, len(WEEKS) + 1)),
        "typical_risk": float(s.typical_risk[0]),
        "drivers": drivers,
        "ratings": used,
        "signal": _signal_view(spec, s, R[0], K),
        "rupture": _rupture_view(spec, s, R[0], K),
        "discrepancy": _discrepancy_view(spec, s, R[0], K),
        "label_note": _label_note(K),
    }


def _interval(low: float, high: float) -> dict[str, float] | None:
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return {"low": float(low), "high": float(high), "level": UNCERTAINTY_LEVEL}


def _label_note(K: int) -> str:
    if K == 0:
        return "No weekly rating yet: the risk is the admission risk."
    if K >= 3:
        return (
            "All three weeks are rated: the label (weeks 1-3) is mostly observed; the risk uses "
            "the week-2 model and week-3 ratings feed the markers only."
        )
    return (
        f"After week {K} the label (low alliance over weeks 1-3) partly consists of what was "
        f"already observed; risk_remaining is the risk for weeks {K + 1}-3 only."
    )


def _signal_view(spec, s: WeeklyScores, R: np.ndarray, K: int) -> dict[str, Any]:
    raters = list(spec["band"]["raters"])
    band = {}
    for j, r in enumerate(RATERS):
        lo, ob = s.band_lower[0, j], R[K - 1, j] if K else np.nan
        if np.isnan(ob) or np.isnan(lo):
            continue
        band[r] = {"lower": float(lo), "observed": float(ob), "below": bool(ob < lo)}
    flag = bool(s.signal[0])
    q = spec["band"]["quantile"]
    if not K:
        why = "No weekly rating yet."
    elif flag:
        who = [r for r in raters if band.get(r, {}).get("below")]
        why = (
            f"The week-{K} {' and '.join(who)} rating is below the expected band: lower than "
            f"{_band_text(q)} of training clients with a similar admission risk rated that week."
        )
    else:
        why = (
            f"The week-{K} rating is within the expected band for this admission risk (at or "
            f"above the {_band_text(q)} quantile of training clients with a similar risk)."
        )
    return {
        "flag": flag,
        "week": K or None,
        "raters": raters,
        "expected_band": band,
        "why": why,
        "actions": actions()["signal"] if flag else [],
    }


def _rupture_view(spec, s: WeeklyScores, R: np.ndarray, K: int) -> dict[str, Any]:
    thr = {r: float(spec["rupture"]["threshold"][r]) for r in RATERS}
    drops = []
    for w in range(2, K + 1):
        for j, r in enumerate(RATERS):
            if s.rupture[0, w - 1, j]:
                a, b = float(R[w - 2, j]), float(R[w - 1, j])
                drops.append({"rater": r, "week": w, "from": a, "to": b, "drop": a - b})
    flag = bool(drops)
    if flag:
        why = "; ".join(
            f"the {d['rater']} rating fell {d['drop']:.2f} points from week {d['week'] - 1} to "
            f"week {d['week']}, more than its measurement error ({thr[d['rater']]:.2f})"
            for d in drops
        )
    elif K < 2:
        why = "A rupture needs two consecutive rated weeks."
    else:
        why = "No week-to-week drop larger than the rating's measurement error."
    return {
        "flag": flag,
        "weeks": sorted({d["week"] for d in drops}),
        "raters": [r for r in RATERS if any(d["rater"] == r for d in drops)],
        "drops": drops,
        "threshold": thr,
        "why": why[0].upper() + why[1:],
        "actions": actions()["rupture"] if flag else [],
    }


def _discrepancy_view(spec, s: WeeklyScores, R: np.ndarray, K: int) -> dict[str, Any]:
    thr = float(spec["discrepancy"]["threshold"])
    both = [w for w in range(1, K + 1) if not np.isnan(s.discrepancy[0, w - 1])]
    if not both:
        return {
            "flag": False,
            "week": None,
            "client": None,
            "counsellor": None,
            "difference": None,
            "threshold": thr,
            "why": "Client and counsellor have not both rated the same week.",
            "actions": [],
        }
    w = both[-1]
    d = float(s.discrepancy[0, w - 1])
    flag = bool(s.discrepancy_flag[0, w - 1])
    who = "counsellor" if d > 0 else "client"
    why = (
        f"In week {w} the {who} rated the alliance {abs(d):.2f} points lower than the "
        f"{'client' if who == 'counsellor' else 'counsellor'}"
        + (
            f", more than the two ratings' measurement error ({thr:.2f})."
            if flag
            else f", within the two ratings' measurement error ({thr:.2f})."
        )
    )
    return {
        "flag": flag,
        "week": w,
        "client": float(R[w - 1, 0]),
        "counsellor": float(R[w - 1, 1]),
        "difference": d,
        "threshold": thr,
        "why": why,
        "actions": actions()["discrepancy"] if flag else [],
    }
