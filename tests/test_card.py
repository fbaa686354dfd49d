"""The TRIPOD+AI model card: headings, synthetic warning, self-contained and escaped HTML."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.settings import BandConfig
from models import plots
from models.card import SECTIONS, SYNTHETIC_HEADING, render_model_card
from models.metrics import band_table, bootstrap_ci, decision_curve, subgroup_metrics


@pytest.fixture(scope="module")
def full_info(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("card")
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.7, 600)
    y = rng.binomial(1, p)
    frame = pd.DataFrame(
        {"sex": rng.choice(["female", "male", "other"], 600, p=[0.49, 0.49, 0.02])}
    )
    curve = decision_curve(y, p)
    images = {
        "Calibration": plots.calibration_plot(y, p, out / "cal.png", oracle_p=p, synthetic=True),
        "ROC": plots.roc_plot(y, p, out / "roc.png", synthetic=True),
        "Decision curve": plots.decision_curve_plot(curve, out / "dc.png", synthetic=True),
        "Drivers": ("Explanations", plots.importance_bar_plot({"motivation": 0.4}, out / "d.png")),
    }
    return {
        "model_name": "alliance-risk",
        "version": 3,
        "trained_at": "2025-01-01T00:00:00Z",
        "synthetic": True,
        "data": {
            "source": "simulator (see https://example.org/sim)",
            "n_admissions": 5000,
            "n_labelled": 600,
            "date_range": ("2020-01-01", "2021-12-31"),
            "digest": "ab" * 32,
        },
        "label": {"rater": "client", "threshold": 5.0, "min_valid_weeks": 1, "prevalence": 0.25},
        "predictors": [("tcu_readiness", "motivation", True, "higher lowers risk")],
        "missing": "Median imputation with missingness indicators.",
        "validation": "5-fold cross-validation grouped by counsellor; bootstrap clustered by counsellor.",
        "metrics": bootstrap_ci(y, p, n_boot=30),
        "oracle": {"auroc": 0.8, "brier": 0.15},
        "candidates": pd.DataFrame({"model": ["logistic", "lightgbm"], "auroc": [0.7, 0.72]}),
        "decision_curve": curve.iloc[::10],
        "subgroups": subgroup_metrics(y, p, frame, ["sex"]),
        "bands": band_table(y, p, BandConfig()),
        "band_config": {"moderate_from": 0.2, "high_from": 0.4},
        "explanations": {"motivation": 0.4, "coping": 0.2},
        "driver_rank_spearman": 0.9,
        "images": images,
        "limitations": ["Label threshold is arbitrary | no cut-off exists."],
    }


def _headings(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.M)


def test_all_headings_in_order(full_info):
    md, page = render_model_card(full_info)
    assert _headings(md) == [SYNTHETIC_HEADING, *SECTIONS]
    html_headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert html_headings == [SYNTHETIC_HEADING, *SECTIONS]


def test_required_headings_are_the_tripod_list():
    assert SECTIONS == (
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


def test_synthetic_warning_only_when_synthetic(full_info):
    md, page = render_model_card({**full_info, "synthetic": False})
    assert SYNTHETIC_HEADING not in md and SYNTHETIC_HEADING not in page
    md, page = render_model_card(full_info)
    assert md.index(SYNTHETIC_HEADING) < md.index("Intended use and users")
    assert 'class="synthetic"' in page
    assert "SYNTHETIC DATA" in page


def test_html_is_self_contained(full_info):
    _, page = render_model_card(full_info)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    assert page.count('src="data:image/png;base64,') == 4
    assert "image missing" not in page


def test_text_fields_are_escaped(full_info):
    info = {**full_info, "missing": "<script>alert(1)</script>", "limitations": ["a <b>bold</b>"]}
    md, page = render_model_card(info)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in md


def test_minimal_info_renders():
    md, page = render_model_card({})
    assert _headings(md) == list(SECTIONS)
    assert "Not recorded." in md
    assert "<h2>Limitations</h2>" in page


def test_missing_image_file_is_reported_not_fatal(tmp_path):
    md, page = render_model_card({"images": {"Calibration": tmp_path / "nope.png"}})
    assert "image missing: Calibration" in page
    assert "image missing: Calibration" in md


def test_tables_render_values(full_info):
    md, page = render_model_card(full_info)
    assert "| metric | estimate | 95% CI | oracle | gap (model - oracle) |" in md
    assert "tcu_readiness" in md and "tcu_readiness" in page
    assert "&#124; no cut-off" in md  # pipe in a cell cannot break the markdown table
    assert "<th>suppressed</th>" in page
