"""The TRIPOD+AI model card: headings, synthetic warning, self-contained and escaped HTML."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.settings import BandConfig
from models.building import plots
from models.building.card import SECTIONS, SYNTHETIC_HEADING, render_model_card
from models.building.metrics import band_table, bootstrap_ci, decision_curve, subgroup_metrics


@pytest.fixture(scope="session")
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
        "Sample size and uncertainty",
        "Performance",
        "Subgroups",
        "Fairness at the band thresholds",
        "Thresholds and risk bands",
        "Explanations",
        "Weekly early warning",
        "Limitations",
    )


def test_weekly_section_states_what_the_label_after_week_k_is():
    import pandas as pd

    weekly = {
        "table": pd.DataFrame(
            [
                {
                    "after_week": 1,
                    "AUROC (b) [95% CI]": "0.905 [0.88, 0.93]",
                    "signal sensitivity": "35.6%",
                }
            ]
        ),
        "band_quantile": 0.1,
        "band_bins": 5,
        "band_raters": ["client"],
        "rupture_threshold": {"client": 1.02, "counsellor": 0.72},
        "discrepancy_threshold": 0.88,
        "coefficients": None,
    }
    md, page = render_model_card({"weekly": weekly})
    assert "Weekly early warning" in md
    assert "the label partly consists of what was already observed" in md
    assert "0.905 [0.88, 0.93]" in md and "35.6%" in page
    assert "client 1.02" in md
    md, _ = render_model_card({})
    assert "No weekly models in this version" in md


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


def test_card_renders_again_once_its_image_files_are_gone(tmp_path):
    """pipelines.train renders the card a second time, after registration, to name the version."""
    from models.building.card import embed_images

    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.7, 200)
    path = plots.roc_plot(rng.binomial(1, p), p, tmp_path / "roc.png", synthetic=True)
    info = embed_images({"images": {"ROC": path}, "trained_at": "2025-01-01T00:00:00Z"})
    path.unlink()
    md, page = render_model_card({**info, "version": 7})
    assert page.count('src="data:image/png;base64,') == 1 and "image missing" not in page
    assert md.startswith("# Model card: alliance-risk version 7\n")
    assert render_model_card(info)[0].startswith("# Model card: alliance-risk (not yet registered)")


def test_label_counts_are_a_table_in_words(full_info):
    counts = {"admissions": 900, "labelled": 600, "low": 150, "early_leavers": 40}
    md, page = render_model_card({**full_info, "label_counts": counts})
    assert "| labelled: low alliance | 150 |" in md
    assert "<td>early leavers (counted apart, never low alliance)</td><td>40</td>" in page
    assert "{" not in md.split("## Label")[1].split("## Predictors")[0]


# ---- the card a training run logs, against the metrics it logs ------------------------------


def _fmt3(v: float) -> str:
    """The card's stated precision: three decimals (whole numbers without decimals)."""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.3f}"


def _card_table(md: str, header: str) -> list[list[str]]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_logged_card_shows_the_logged_metrics(trained_store, tmp_path):
    """The champion's model card (an artifact of its run) states the same held-out metrics, CIs,
    oracle gaps and sample sizes that the run logged to MLflow, to the card's three decimals."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = trained_store.uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champ = client.get_model_version_by_alias("alliance-risk", "champion")
    logged = client.get_run(champ.run_id).data.metrics
    path = mlflow.artifacts.download_artifacts(
        run_id=champ.run_id,
        artifact_path="model_card/model_card.md",
        dst_path=str(tmp_path),
        tracking_uri=uri,
    )
    md = open(path).read()

    # Oracle columns appear only when the run was asked for them (--oracle); the store's run was not.
    has_oracle = any(k.startswith("oracle_") for k in logged)
    header = "| metric | estimate | 95% CI |" + (
        " oracle | gap (model - oracle) |" if has_oracle else ""
    )
    assert header + "\n" in md, md[:3000]
    rows = _card_table(md, header)
    names = {k[len("test_") :] for k in logged if k.startswith("test_")}
    names = {n for n in names if not n.endswith(("_lo", "_hi"))}
    assert {"auroc", "brier", "log_loss", "cal_slope", "cal_intercept"} <= names, names
    in_card = {r[0]: r for r in rows}
    assert names <= set(in_card), (names, set(in_card))
    for name in names:
        estimate, ci = in_card[name][1:3]
        assert estimate == _fmt3(logged[f"test_{name}"]), (name, estimate)
        assert ci == f"{_fmt3(logged[f'test_{name}_lo'])} to {_fmt3(logged[f'test_{name}_hi'])}"
        if has_oracle and f"oracle_{name}" in logged:  # a synthetic cohort has the true risk
            oracle, gap = in_card[name][3:5]
            assert oracle == _fmt3(logged[f"oracle_{name}"]), (name, oracle)
            assert gap == _fmt3(logged[f"gap_{name}"]), (name, gap)

    # Sample sizes and prevalence, from the label counts the run logged.
    n_adm, n_lab, n_low = (logged[f"label_{k}"] for k in ("admissions", "labelled", "low"))
    assert f"- Admissions: {n_adm:.0f}\n" in md
    assert f"- Labelled clients (sample size): {n_lab:.0f}\n" in md
    shown = re.search(r"Prevalence of low alliance: ([0-9.]+)\.", md)
    assert shown and abs(float(shown[1]) - n_low / n_lab) <= 0.0006, (shown, n_low / n_lab)


def test_the_card_refuses_a_key_it_does_not_know_by_name():
    """The card is rendered from a typed view (CardInfo): a misspelt key is an error naming it,
    not a section silently left "not recorded"."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sampel_size"):
        render_model_card({"model_name": "alliance-risk", "sampel_size": {}})
