"""What the service does with a record, independent of BentoML: validate, score, explain, audit.

One record goes: ``check_record`` (the pydantic model generated from the catalog: types, codes,
ranges, unknown fields) -> ``score_record`` (questionnaire items into scale scores; a scale whose
given score contradicts its items is an error on the scale field) -> ``features.rows.
transform_record`` (pure-Python row) -> ``ScoringModel.proba`` -> band -> ``explain_row``. Nothing
on this path imports or calls pandas, scikit-learn, Great Expectations or MLflow.

Error contract: every problem with the input is a 4xx answer whose body is
``{"errors": [{"field": ..., "reason": ...}]}`` (plus ``admission_id`` when it could be read).
Values are never echoed in errors, and nothing from a record is logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from features.catalog import (
    DRIVER_GROUPS,
    MODIFIABLE_GROUPS,
    PREDICTORS,
    SCORING_BY_NAME,
    SCORING_RECORD,
    SECTIONS,
    fields_of_driver,
)
from features.instruments import MAX_MISSING_FRACTION, SCALES, SCALES_BY_FIELD
from features.rows import record_row
from features.scoring import ITEMS_USED, score_record
from models import artifact as A
from models.lifecycle.resolve import LoadedModel
from models.scoring import weekly as W
from models.scoring.explain import (
    MIN_POINTS,
    explain_matrix,
    explain_row,
    interval_view,
    monitoring_actions,
    what_ifs,
)
from models.scoring.scorer import logit, sigmoid
from serving.audit import AuditLog
from validation.record import check_record
from validation.rules import range_words

logger = logging.getLogger("alliance_risk.serving")

DISCLAIMER = (
    "Decision support, not a diagnosis: this score estimates the risk of a low early therapeutic "
    "alliance to help plan care. It must never be used to refuse, delay or ration treatment."
)
BODY = "body"  # the field name used for problems with the request body as a whole
# JSON integers this large cannot be a valid value of any field and overflow float conversion.
_HUGE = 10**15

DRIVER_LABELS = {
    "motivation": "Motivation",
    "coping": "Coping",
    "social_support": "Social support",
    "distress": "Psychological distress",
    "attachment": "Attachment style",
    "substance_use": "Substance use",
    "history": "Treatment history and referral",
    "demographics": "Demographics",
    "counsellor": "Counsellor",
    W.RATINGS_GROUP: "Weekly alliance ratings",
}
RATINGS = "ratings"  # the optional key of a record (or batch record) holding weekly WAI-S ratings
# 409, not 422: the body is valid and would be scored by a model that has weekly models; what is
# wrong is the state of this service (its champion predates issue 19), which the client cannot fix
# by changing the request (it can send the record without ratings, or the service retrains).
NO_WEEKLY_STATUS = 409
INTERVAL_NOTE = (
    "risk_interval is the 95% uncertainty interval of the updated risk (risk), "
    "risk_remaining_interval that of risk_remaining, and risk_interval_at_admission the admission "
    "model's interval around risk_at_admission. The updated intervals combine the admission "
    "model's refits with draws of the weekly model's parameters; with no rating yet they are the "
    "admission interval. null where the model states none."
)


def ratings_json_schema() -> dict[str, Any]:
    """The JSON schema of a record's optional ``ratings`` (the OpenAPI document shows it)."""
    item = {"type": ["integer", "null"], "minimum": 1, "maximum": 7}
    return {
        "title": "ratings",
        "type": "array",
        "maxItems": len(W.WEEKS) * len(W.RATERS),
        "description": "Optional weekly WAI-S ratings (issue 19): one object per week (1-3) and "
        "rater (client, counsellor), at most one each, with either `items` (wai_01..wai_12, whole "
        "numbers 1-7 on the WAI-S response scale, at most 2 missing; items 4 and 10 are "
        "reverse-scored by the server) or `item_mean` (1-7, after reverse-scoring). With ratings "
        "the answer adds as_of_week, risk_at_admission, risk_interval_at_admission, risk_remaining, "
        "risk_remaining_interval, signal, rupture, discrepancy and the 'ratings' driver, and risk "
        "(with risk_interval) is the updated risk. A bad rating is a "
        "422 naming ratings[i].<field>; a model without weekly models answers 409.",
        "items": {
            "type": "object",
            "title": "WeeklyRating",
            "properties": {
                "week": {"type": "integer", "enum": list(W.WEEKS)},
                "rater": {"type": "string", "enum": list(W.RATERS)},
                "items": {
                    "type": "object",
                    "properties": {c: dict(item) for c in W.ITEM_CODES},
                    "additionalProperties": False,
                },
                "item_mean": {"type": "number", "minimum": 1, "maximum": 7},
            },
            "required": ["week", "rater"],
            "additionalProperties": False,
        },
    }


# Response-scale anchor words for the item inputs on the page (numbers and anchor words only,
# never item wording): TCU 1-5 (IBR scoring guides), GHQ-12 Likert 0-3 with the options ordered
# from healthy to unwell on the form (Goldberg & Williams 1988), Brief COPE 1-4 (Carver 1997).
RESPONSE_ANCHORS: dict[str, dict[str, str]] = {
    "TCU": {"low": "strongly disagree", "high": "strongly agree"},
    "GHQ-12": {"low": "first (healthiest) option", "high": "last option"},
    "Brief COPE": {"low": "not at all", "high": "a lot"},
}


def questionnaires() -> list[dict[str, Any]]:
    """The questionnaires a page may take as item answers, one per (page section, instrument):
    their scales, item codes, response range and anchors. From features.instruments (the keys)
    and the catalog (sections)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for sc in SCALES:
        section = SCORING_BY_NAME[sc.field].section
        q = out.setdefault(
            (section, sc.instrument),
            {
                "id": f"{section}-{sc.instrument}".lower().replace(" ", "-"),
                "instrument": sc.instrument,
                "section": section,
                "low": sc.low,
                "high": sc.high,
                "anchors": RESPONSE_ANCHORS[sc.instrument],
                "scales": [],
            },
        )
        n = len(sc.items)
        q["scales"].append(
            {
                "field": sc.field,
                "items": sc.item_codes(),
                "reflected": [f"{sc.prefix}_{i:02d}" for i in sc.reflected],
                "combine": sc.combine,
                "max_missing": math.floor(MAX_MISSING_FRACTION * n + 1e-9),
            }
        )
    return list(out.values())


def error(field: str, reason: str) -> dict[str, str]:
    # A key that is the empty string is named by its JSON spelling, '""': an error must say
    # which field it is about, and an empty name says nothing (found by Schemathesis: {"": null})
    return {"field": field or '""', "reason": reason}


def errors_body(errors: list[dict[str, str]], admission_id: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": errors}
    if isinstance(admission_id, str):
        out = {"admission_id": admission_id, **out}
    return out


def catalog_entry(f) -> dict[str, Any]:
    return {
        "name": f.name,
        "table": f.table,
        "kind": f.kind,
        "required": f.required,
        "codes": list(f.codes) if f.codes else None,
        "min": f.minimum,
        "max": f.maximum,
        "pattern": f.pattern,
        "unit": f.unit,
        "instrument": f.instrument,
        "description": f.description,
        "allowed": range_words(f),
        "driver": f.driver,
        "modifiable": f.modifiable,
        "direction": f.direction,
        "section": f.section,
        "is_item": f.is_item,
        "scale": f.scale,
    }


def field_catalog() -> list[dict[str, Any]]:
    """Every field of the scoring record, in catalog order (what a client needs for a form)."""
    return [catalog_entry(f) for f in SCORING_RECORD]


def _label_words(label: Mapping[str, Any]) -> str:
    if not label:
        return "low early alliance (definition not recorded with the model)"
    rater = label.get("rater", "client")
    who = "either rater's" if rater == "either" else f"the {rater}'s"
    return (
        f"low_alliance = {who} mean WAI-S item mean over valid weeks 1-3 (at least "
        f"{label.get('min_valid_weeks', 1)}) is below {label.get('threshold')}"
    )


class Engine:
    """The loaded champion and everything a request needs, built once at start."""

    def __init__(self, champion: LoadedModel, audit: AuditLog | None, max_batch: int):
        self.champion = champion
        self.model = champion.model
        self.bands = champion.bands
        self.audit = audit
        self.max_batch = max_batch
        self.model_ref = {"name": champion.name, "version": champion.version}
        self._optional_predictors = tuple(f.name for f in PREDICTORS if not f.required)
        self._info = self._model_info()
        # Warm every code path once (first calls pay for caches and lazy imports).
        self._warm()

    # ---- /model ----------------------------------------------------------------------------
    def _model_info(self) -> dict[str, Any]:
        c = self.champion
        return {
            "name": c.name,
            "version": c.version,
            "run_id": c.run_id,
            "trained_at": c.trained_at,
            "registered_at": c.registered_at,
            "synthetic_data": bool(self.model.reference.get(A.SYNTHETIC_KEY, False)),
            "promotion": c.tags,
            "kind": self.model.kind,
            "label": {**c.label, "definition": _label_words(c.label)},
            "metrics": c.metrics,
            "metrics_note": "held-out test split of the training run; _lo/_hi are 95% bootstrap "
            "bounds",
            "bands": {
                **self.bands.model_dump(),
                "rule": f"low < {self.bands.moderate_from:g} <= moderate < "
                f"{self.bands.high_from:g} <= high",
            },
            "monitoring": monitoring_actions(),
            "drivers": [
                {
                    "driver": g,
                    "label": DRIVER_LABELS.get(g, g),
                    "modifiable": g in MODIFIABLE_GROUPS,
                    "fields": [f.name for f in fields_of_driver(g)],
                }
                for g in DRIVER_GROUPS
            ],
            "sections": [{"id": s, "title": t} for s, t in SECTIONS],
            "questionnaires": questionnaires(),
            "catalog": field_catalog(),
            "max_batch": self.max_batch,
            "disclaimer": DISCLAIMER,
        }

    def model_info(self) -> dict[str, Any]:
        return self._info

    def _warm(self) -> None:
        rec = {
            "admission_id": "warmup",
            "service_id": "warmup",
            "admission_date": "2024-01-01",
            "age": 30,
            "sex": "female",
            "primary_substance": "alcohol",
            "mot_desire_for_help": 10,
            "social_support": 10,
            "psych_distress": 30,
            "coping_avoidant": 4,
        }
        self._score(rec)
        if self.model.weekly is not None:
            self._score({**rec, RATINGS: [{"week": 1, "rater": "client", "item_mean": 5.0}]})

    # ---- one record ------------------------------------------------------------------------
    def _validate(self, body: dict) -> tuple[Any, list[dict[str, str]]]:
        huge = [
            error(k, "out of range (number far outside any allowed range)")
            for k, v in body.items()
            if type(v) is int and abs(v) > _HUGE
        ]
        if huge:
            return None, huge
        try:
            validated, errs = check_record(body)
        except Exception as exc:  # a value no validator anticipated; never a 500
            logger.warning(
                "record check raised %s; answered as an invalid record", type(exc).__name__
            )
            return None, [error("*", "invalid record (a value could not be read)")]
        if errs:
            # One error per field, in the order pydantic found them.
            seen: dict[str, str] = {}
            for e in errs:
                seen.setdefault(e.field, e.reason)
            return None, [error(f, r) for f, r in seen.items()]
        return validated, []

    def _score(self, body: dict) -> tuple[dict[str, Any] | None, list[dict[str, str]], int]:
        """(result, [], 200) or (None, field-named errors, 422 or 409)."""
        ratings = None
        if RATINGS in body:  # the weekly ratings travel on the record; the rest is the record
            ratings = body[RATINGS]
            body = {k: v for k, v in body.items() if k != RATINGS}
        validated, errs = self._validate(body)
        if ratings is not None:
            errs = errs + [error(e["field"], e["message"]) for e in W.validate_ratings(ratings)]
        if errs:
            return None, errs, 422
        if ratings is not None and self.model.weekly is None:
            return None, [error(RATINGS, self._no_weekly)], NO_WEEKLY_STATUS
        record = validated.model_dump(exclude_none=True)
        scored, conflicts = score_record(record)
        if conflicts:
            seen: dict[str, str] = {}
            for e in conflicts:
                seen.setdefault(e.field, e.reason)
            return None, [error(f, r) for f, r in seen.items()], 422
        items_used = scored.pop(ITEMS_USED, {})
        row = record_row(scored)
        # The risk is the sum of the contributions (one model call, not two).
        ex = explain_matrix(self.model, row)
        exp = explain_row(self.model, scored, row, explanation=ex)
        p = exp["risk"]
        if not math.isfinite(p):  # cannot happen with a valid model; never answer NaN
            return None, [error("*", "the record could not be scored")], 422
        band = self.bands.band(p)
        exp["monitoring"] = monitoring_actions().get(band)
        out = self._response(record, scored, items_used, p, band, exp)
        if ratings is not None:
            self._weekly(out, row, ratings, ex)
        return out, [], 200

    @property
    def _no_weekly(self) -> str:
        return (
            f"the serving model ({self.champion.name} version {self.champion.version}) has no "
            "weekly models (trained before issue 19), so it cannot update the risk with weekly "
            "ratings: send the record without 'ratings', or retrain (python -m pipelines.train) "
            "and promote a model that has them"
        )

    # ---- the weekly update (issue 19) --------------------------------------------------------
    def _weekly(self, out: dict[str, Any], row, ratings: list, ex) -> None:
        """Turn an admission answer into the weekly one, in place: risk, its interval, band,
        drivers and the typical risk become the updated ones; the admission figures stay beside
        them (``risk_at_admission``, ``risk_interval_at_admission``, ...)."""
        u = W.update(self.model, row, ratings, explanation=ex, validated=True)
        K = u["as_of_week"]
        p_adm, band_adm = out["risk"], out["band"]
        p = u["risk"]
        band = self.bands.band(p)
        upd = {d["driver"]: d for d in u["drivers"]}
        beta = self.model.weekly["models"][str(u["model_week"])]["label"]["beta"] if K else 1.0
        drivers = []
        asked = []
        for d in out["drivers"]:
            new = upd[d["driver"]]
            d["points_at_admission"] = d["points"]
            d["points"] = round(new["points"], 4)
            d["log_odds"] = round(new["log_odds"], 4)
            d["percentage_points"] = round(100 * new["points"], 2)
            pts = new["points"]
            d["effect"] = (
                "raises" if pts >= MIN_POINTS else "lowers" if pts <= -MIN_POINTS else "none"
            )
            act = d["modifiable"] and d["effect"] == "raises" and d["assessed"]
            d["actions"] = self._actions(d["driver"]) if act else []
            d["what_if"] = None
            if d["modifiable"] and d["effect"] == "raises":
                if d["assessed"]:
                    d["what_if_omitted"] = None
                    asked.append(d)
                else:
                    d["what_if_omitted"] = (
                        "not assessed: complete the questionnaire before weighing a change"
                    )
            else:
                d["what_if_omitted"] = None
            drivers.append(d)
        if asked:
            # The update is linear in the admission log-odds m (beta m + ...): a driver at the
            # typical client's values moves the updated log-odds by beta (m' - m).
            p_w = what_ifs(self.model, row, [d["driver"] for d in asked])
            m = logit(p_adm, eps=1e-300)
            lo = logit(p, eps=1e-300)
            for d, pw in zip(asked, p_w, strict=True):
                q = float(sigmoid(lo + beta * (logit(float(pw), eps=1e-300) - m)))
                if round(100 * q, 1) < round(100 * p, 1):
                    d["what_if"] = {
                        "risk": round(q, 4),
                        "instead_of": round(p, 4),
                        "setting": "this driver's answers at the typical client's values, "
                        "this week's ratings kept",
                    }
                else:
                    d["what_if_omitted"] = (
                        f"with this driver at the typical client's values the updated risk would "
                        f"be {100 * q:.1f}%, not lower than {100 * p:.1f}% at the precision shown"
                    )
        if K:
            r = upd[W.RATINGS_GROUP]
            typical = self.model.weekly["typical"]
            drivers.append(
                {
                    "driver": W.RATINGS_GROUP,
                    "label": DRIVER_LABELS[W.RATINGS_GROUP],
                    "status": "assessed",
                    "assessed": True,
                    "effect": r["effect"],
                    "points": round(r["points"], 4),
                    "log_odds": round(r["log_odds"], 4),
                    "percentage_points": round(100 * r["points"], 2),
                    "points_at_admission": 0.0,
                    "modifiable": False,
                    "values": [
                        {
                            "field": f"week {x['week']} {x['rater']}",
                            "value": round(x["item_mean"], 4),
                            "typical": round(
                                float(typical[x["week"] - 1, W.RATERS.index(x["rater"])]), 4
                            ),
                            "shown": f"{x['item_mean']:.2f}",
                            "typical_shown": (
                                f"{typical[x['week'] - 1, W.RATERS.index(x['rater'])]:.2f}"
                            ),
                        }
                        for x in u["ratings"]
                    ],
                    "missing_fields": [],
                    "suggestion": None,
                    "actions": [],
                    "what_if": None,
                    "what_if_omitted": None,
                }
            )
        drivers.sort(key=lambda d: -abs(d["points"]))
        iv, rem_iv = u["risk_interval"], u["risk_remaining_interval"]
        out.update(
            {
                "risk": p,
                "risk_interval": interval_view(iv["low"], iv["high"], self.bands.band)
                if iv
                else None,
                "risk_interval_at_admission": out["risk_interval"],
                "risk_percent": round(100 * p, 1),
                "band": band,
                "typical_risk": u["typical_risk"],
                "base_risk": u["typical_risk"],
                "drivers": drivers,
                "monitoring": monitoring_actions().get(band),
                "as_of_week": K,
                "model_week": u["model_week"],
                "risk_at_admission": p_adm,
                "risk_percent_at_admission": round(100 * p_adm, 1),
                "band_at_admission": band_adm,
                "typical_risk_at_admission": out["typical_risk"],
                "risk_remaining": u["risk_remaining"],
                "risk_remaining_interval": interval_view(rem_iv["low"], rem_iv["high"])
                if rem_iv
                else None,
                "remaining_weeks": u["remaining_weeks"],
                "ratings": u["ratings"],
                "signal": u["signal"],
                "rupture": u["rupture"],
                "discrepancy": u["discrepancy"],
                "label_note": u["label_note"],
                "risk_interval_note": INTERVAL_NOTE,
            }
        )
        if K:
            out["points_note"] = (
                "Every driver group is listed, assessed or not, and the weekly ratings as one "
                "more group. Points are shares of (updated risk - the typical client's risk "
                "with typical ratings): the intake groups are the admission contributions "
                "times the update's weight on the admission risk; all add up to risk - "
                "typical risk."
            )

    @staticmethod
    def _actions(group: str) -> list[dict[str, str]]:
        from models.scoring.explain import actions

        return actions().get(group, [])

    def _response(self, record, scored, items_used, p, band, exp) -> dict[str, Any]:
        warnings: list[str] = []
        missing = [n for n in self._optional_predictors if scored.get(n) is None]
        if missing:
            warnings.append(
                f"{len(missing)} optional field(s) not given, scored as missing: "
                + ", ".join(missing)
            )
        for g in exp["not_assessed"]:
            warnings.append(
                f"driver '{g}' could not be assessed: none of its fields were given "
                "(its contribution is shown, labelled not assessed)"
            )
        scored_scales = []
        for scale, codes in items_used.items():
            n = len(SCALES_BY_FIELD[scale].items) if scale in SCALES_BY_FIELD else len(codes)
            note = "" if len(codes) == n else f" (prorated: {len(codes)} of {n} items answered)"
            warnings.append(f"{scale} scored from item responses {', '.join(codes)}{note}")
            if isinstance(scored.get(scale), (int, float)):
                scored_scales.append(
                    {
                        "scale": scale,
                        "instrument": SCALES_BY_FIELD[scale].instrument
                        if scale in SCALES_BY_FIELD
                        else None,
                        "score": scored[scale],
                        "items_answered": len(codes),
                        "items_total": n,
                        "prorated": len(codes) < n,
                    }
                )
        drivers = []
        for d in exp["drivers"]:
            d["label"] = DRIVER_LABELS.get(d["driver"], d["driver"])
            d["percentage_points"] = round(100 * d["points"], 2)
            drivers.append(d)
        return {
            "admission_id": record.get("admission_id"),
            "risk": p,
            "risk_percent": round(100 * p, 1),
            "risk_interval": exp["risk_interval"],
            "band": band,
            "bands": {"moderate_from": self.bands.moderate_from, "high_from": self.bands.high_from},
            "typical_risk": exp["typical_risk"],
            "base_risk": exp["typical_risk"],
            "model": self.model_ref,
            "drivers": drivers,
            "not_assessed": exp["not_assessed"],
            "items_used": items_used,
            "scale_scores": {
                k: scored[k] for k in items_used if isinstance(scored.get(k), (int, float))
            },
            "scored_scales": scored_scales,
            "warnings": warnings,
            "monitoring": exp["monitoring"],
            "points_note": "Every driver group is listed, assessed or not. Its points are its "
            "share of (risk - the typical client's risk), from exact Shapley values against the "
            "typical client (the medians and most common values of the training data) in "
            "calibrated log-odds; the points of all groups add up to risk - typical risk.",
            "disclaimer": DISCLAIMER,
        }

    def score(self, body: Any, audit: bool = True) -> tuple[int, dict[str, Any]]:
        """POST /score: (status, JSON body)."""
        if not isinstance(body, dict):
            return 400, errors_body([error(BODY, "the body must be a JSON object (one record)")])
        result, errs, status = self._score(body)
        if errs:
            return status, errors_body(errs, body.get("admission_id"))
        if audit and self.audit is not None:
            self.audit.record([self._audit_row(result)], "/score")
        return 200, result

    def _audit_row(self, result: dict[str, Any]) -> tuple[str, str, float, str]:
        """(admission_id, version, probability, band) for the audit: the ADMISSION score, also
        for a weekly check (``risk_at_admission``, ``band_at_admission``), so outcome monitoring
        from the audit (monitoring/outcomes.py reads each admission's latest row) keeps judging
        the admission model; nothing about the ratings is stored."""
        if "risk_at_admission" in result:
            p, band = result["risk_at_admission"], result["band_at_admission"]
        else:
            p, band = result["risk"], result["band"]
        return (result["admission_id"], self.champion.version, p, band)

    # ---- a batch ---------------------------------------------------------------------------
    def check_batch_shape(self, body: Any) -> list[dict[str, str]]:
        """Problems with the batch envelope itself (the whole request is refused)."""
        if not isinstance(body, dict):
            return [error(BODY, 'the body must be a JSON object: {"records": [...]}')]
        errs = [
            error(k, "unknown field (the batch body holds only 'records')")
            for k in body
            if k != "records"
        ]
        records = body.get("records")
        if "records" not in body:
            errs.append(error("records", "required field is missing"))
        elif not isinstance(records, list):
            errs.append(error("records", "must be a JSON array of scoring records"))
        elif len(records) > self.max_batch:
            errs.append(
                error(
                    "records",
                    f"too many records: {len(records)} > max_batch {self.max_batch} "
                    "(split the batch)",
                )
            )
        elif not records:
            errs.append(error("records", "must hold at least one record"))
        return errs

    def score_batch(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /score_batch: one result per record, in order; bad records carry their errors."""
        errs = self.check_batch_shape(body)
        if errs:
            return 400, errors_body(errs)
        results: list[dict[str, Any]] = []
        audit_rows = []
        n_err = 0
        for i, rec in enumerate(body["records"]):
            if not isinstance(rec, dict):
                n_err += 1
                results.append(
                    {
                        "index": i,
                        "admission_id": None,
                        "errors": [error(BODY, "each record must be a JSON object")],
                    }
                )
                continue
            result, rerrs, _ = self._score(rec)
            aid = rec.get("admission_id")
            if rerrs:
                n_err += 1
                results.append(
                    {
                        "index": i,
                        "admission_id": aid if isinstance(aid, str) else None,
                        "errors": rerrs,
                    }
                )
                continue
            audit_rows.append(self._audit_row(result))
            results.append({"index": i, **result})
        if self.audit is not None:
            self.audit.record(audit_rows, "/score_batch")
        return 200, {
            "model": self.model_ref,
            "n_records": len(results),
            "n_scored": len(results) - n_err,
            "n_errors": n_err,
            "results": results,
            "disclaimer": DISCLAIMER,
        }
