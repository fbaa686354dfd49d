"""A service's own export, as the README tells a data scientist to bring it (issue 9).

- The README's "Bringing a service's own export" commands, run exactly as written (as
  subprocesses, from a temporary working folder, relative paths) on an export this project did
  not write: a SYNTHETIC cohort re-saved by pandas, as CSV (whole numbers as int64, numeric
  admission ids, gaps, True/False) and as Parquet.
- The registered pyfunc scoring ``pd.read_csv`` / ``pd.read_parquet`` of a contract table, joined
  or not with the counsellors table, with the text path's answers to the last bit and the service
  engine's and batch scoring's answers; a record that breaks the contract gets a field-named
  ``DataError``, not an MLflow schema error.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.commands import REPO, restored_mlflow_uris

TABLES = ("intake", "counsellors", "alliance", "episodes")


def readme_commands(heading: str) -> list[str]:
    """The shell lines of the first ```bash block under a README heading, comments removed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block under '{heading}'"
    lines = [ln.split("  #", 1)[0].strip() for ln in block.group(1).splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def service_export(root: Path, fmt: str, n: int = 900, seed: int = 5) -> Path:
    """A SYNTHETIC cohort written by the generator, then read and re-saved with pandas' defaults
    the way a service's own tooling would: integer admission ids, int64 and float64 columns,
    booleans as True/False (CSV) or bool/object (Parquet). Written to root/path/to/export, the
    README's own placeholder, so its commands run verbatim from root."""
    from simulator.generator import generate, write

    raw = root / "generated"
    write(generate(n, seed=seed), raw)
    export = root / "path" / "to" / "export"
    export.mkdir(parents=True)
    ids = pd.read_csv(raw / "intake.csv", dtype="str")["admission_id"]
    numeric = {aid: 100_000 + i for i, aid in enumerate(ids)}  # a database's integer keys
    for name in (*TABLES, "ground_truth"):
        df = pd.read_csv(raw / f"{name}.csv")  # pandas' own typing, as a service's script would
        if "admission_id" in df.columns:
            df["admission_id"] = df["admission_id"].map(numeric).astype("int64")
        if fmt == "parquet" and name != "ground_truth":
            df.to_parquet(export / f"{name}.parquet", index=False)
        else:
            df.to_csv(export / f"{name}.csv", index=False)
    shutil.copy(raw / "ground_truth.json", export / "ground_truth.json")  # keeps it SYNTHETIC
    return export


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_service_export_is_valid_as_pandas_wrote_it(tmp_path, fmt):
    """The re-saved export really is typed as a service's would be, and still passes the
    contract (so the README test below fails only when the commands do)."""
    from validation.io import load_tables
    from validation.report import validate_tables

    export = service_export(tmp_path, fmt, n=300)
    if fmt == "csv":
        head = (export / "intake.csv").read_text().splitlines()[1]
        assert head.startswith("100000,") and ("True" in head or "False" in head)
        assert re.search(r",\d+\.0,", (export / "intake.csv").read_text())  # 12.0 for 12
    else:
        typed = pd.read_parquet(export / "intake.parquet")
        assert typed["admission_id"].dtype == "int64" and typed["age"].dtype == "int64"
    report = validate_tables(load_tables(export))
    assert not report.blocking, [str(e) for e in report.errors[:5]]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_readme_export_commands_run_as_written_from_any_folder(tmp_path, fmt):
    commands = readme_commands("Bringing a service's own export")
    assert [shlex.split(c)[:3] for c in commands] == [
        [".venv/bin/python", "-m", "pipelines.validate"],
        [".venv/bin/python", "-m", "pipelines.train"],
    ]
    service_export(tmp_path, fmt)
    # The README's `.venv/bin/python` is the checkout's; from another folder it is found through
    # a link, so the lines run unchanged. Nothing else points back at the checkout.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}",
        "GX_ANALYTICS_ENABLED": "false",
        # A quicker protocol through the environment (settings), so the commands stay literal.
        "ALLIANCE_RISK_TRAIN__N_SPLITS": "3",
        "ALLIANCE_RISK_TRAIN__TUNE_ITERATIONS": "2",
        "ALLIANCE_RISK_TRAIN__N_BOOTSTRAP": "50",
        "ALLIANCE_RISK_TRAIN__CANDIDATES": '["logistic"]',
    }
    (tmp_path / "store").mkdir()
    results = [
        subprocess.run(
            shlex.split(c), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        for c in commands
    ]
    validate, train = results
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]
    assert "OK: no blocking problem" in validate.stdout
    report = tmp_path / "reports" / "validation"  # the default, under the working folder
    assert (report / "validation_report.html").is_file()
    assert (report / "gx" / "index.html").is_file()
    assert "Traceback" not in validate.stderr

    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert re.search(r"version 1 (is the new champion|registered as challenger)", train.stdout)
    assert f"data: {tmp_path / 'path' / 'to' / 'export'}" in train.stdout  # from the cwd
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    (mv,) = client.search_model_versions("name='alliance-risk'")
    assert client.get_run(mv.run_id).data.tags["synthetic_data"] == "true"


# ---------------------------------------------------------------------------------------------
# The registered pyfunc on tables as pandas reads them

SLOW = [pytest.mark.slow, pytest.mark.xdist_group("trained")]


@pytest.fixture(scope="session")
def champion(trained_store):
    import mlflow

    # Session-scoped: the URIs are set only while loading, so no later test inherits them.
    with restored_mlflow_uris(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", trained_store.uri)
        mlflow.set_tracking_uri(trained_store.uri)
        model = mlflow.pyfunc.load_model("models:/alliance-risk@champion")
    return model


def _joined(intake: pd.DataFrame, counsellors: pd.DataFrame) -> pd.DataFrame:
    """Intake with the assigned counsellor's attributes as counsellor_*, by a plain pandas merge."""
    c = counsellors.drop(columns=["service_id"]).rename(
        columns=lambda k: k if k == "counsellor_id" else f"counsellor_{k}"
    )
    return intake.merge(c, on="counsellor_id", how="left")


def _text_path(data: Path, joined: bool) -> pd.DataFrame:
    """What training and batch scoring score: the tables read as text, then typed."""
    from features.build import scoring_frame, typed_records
    from validation.io import load_tables

    t = load_tables(data)
    return typed_records(scoring_frame(t["intake"], t["counsellors"] if joined else None))


def _as_pandas_reads(data: Path, variant: str, tmp: Path) -> pd.DataFrame:
    intake = pd.read_csv(data / "intake.csv")
    if variant == "intake.csv":
        return intake
    flat = _joined(intake, pd.read_csv(data / "counsellors.csv"))
    if variant == "joined csv":
        flat.to_csv(tmp / "flat.csv", index=False)
        return pd.read_csv(tmp / "flat.csv")
    if variant == "joined parquet":
        flat.to_parquet(tmp / "flat.parquet", index=False)
        return pd.read_parquet(tmp / "flat.parquet")
    # booleans as the words "true"/"false" (a JSON export, or dtype=str), whole numbers Int64
    for b in ("legal_pressure", "counsellor_ex_user"):
        flat[b] = flat[b].map({True: "true", False: "false"})
    return flat.astype({"age": "Int64", "previous_treatments": "Int64"})


@pytest.mark.parametrize(
    "variant", ["intake.csv", "joined csv", "joined parquet", "true/false text, Int64"]
)
@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_registry_model_scores_tables_as_pandas_reads_them(
    trained_store, champion, variant, tmp_path
):
    table = _as_pandas_reads(trained_store.data, variant, tmp_path)
    if variant != "true/false text, Int64":
        assert table["age"].dtype == "int64"  # the case MLflow's double columns refused
    got = champion.predict(table)
    want = champion.predict(_text_path(trained_store.data, joined=variant != "intake.csv"))
    assert len(got) == len(table) > 1000
    assert got["admission_id"].tolist() == want["admission_id"].tolist()
    assert np.array_equal(got["risk"].to_numpy(), want["risk"].to_numpy())  # identical
    contrib = [c for c in got.columns if c.startswith("contrib_")]
    assert np.array_equal(got[contrib].to_numpy(), want[contrib].to_numpy())
    assert got["band"].tolist() == want["band"].tolist()


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_registry_model_batch_and_service_engine_give_the_same_risk(
    trained_store, champion, tmp_path
):
    from batch.scoring import score_file
    from models.lifecycle.resolve import load as load_model
    from serving.engine import Engine

    data = trained_store.data
    table = _joined(pd.read_csv(data / "intake.csv"), pd.read_csv(data / "counsellors.csv"))
    pyfunc = champion.predict(table).set_index("admission_id")

    out = tmp_path / "batch.csv"
    summary = score_file(data, out, load_model(trained_store.uri))  # the folder: joined as here
    batch = pd.read_csv(out, dtype={"admission_id": "str"}).set_index("admission_id")
    assert summary.rejected_rows == 0 and len(batch) == len(pyfunc)
    np.testing.assert_allclose(batch["risk"], pyfunc.loc[batch.index, "risk"], rtol=0, atol=1e-12)
    assert batch["band"].tolist() == pyfunc.loc[batch.index, "band"].tolist()

    engine = Engine(load_model(trained_store.uri, lean=True), None, max_batch=5)
    records = json.loads(table.head(300).to_json(orient="records"))  # what a client would POST
    answers = [
        engine.score({k: v for k, v in r.items() if v is not None}, audit=False) for r in records
    ]
    assert [status for status, _ in answers] == [200] * len(records)
    risk = np.array([body["risk"] for _, body in answers])
    ids = [body["admission_id"] for _, body in answers]
    np.testing.assert_allclose(risk, pyfunc.loc[ids, "risk"], rtol=0, atol=1e-12)

    # Trained on the simulator's cohort: the scorer itself says so, and /model passes it on.
    loaded = load_model(trained_store.uri, lean=True)
    assert loaded.model.reference["synthetic_data"] is True
    assert engine.model_info()["synthetic_data"] is True
    loaded.model.reference["synthetic_data"] = False  # as a service's own export would leave it
    assert Engine(loaded, None, max_batch=5).model_info()["synthetic_data"] is False


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_registry_model_names_the_field_of_a_record_that_breaks_the_contract(
    trained_store, champion
):
    from features.errors import DataError

    table = pd.read_csv(trained_store.data / "intake.csv")
    bad = table.copy()
    bad.loc[3, "age"] = 200
    bad_id = bad.loc[3, "admission_id"]
    with pytest.raises(DataError) as caught:
        champion.predict(bad)
    assert [(e.field, e.admission_id, e.value) for e in caught.value.errors] == [
        ("age", bad_id, 200)
    ]
    assert "out of range" in str(caught.value) and "intake.age" in str(caught.value)

    with pytest.raises(DataError) as caught:
        champion.predict(table.drop(columns=["sex"]))
    assert [(e.field, e.reason) for e in caught.value.errors] == [
        ("sex", "required column is missing")
    ]

    words = table.astype({"legal_pressure": "object"})
    words.loc[0, "legal_pressure"] = "perhaps"
    with pytest.raises(DataError, match="legal_pressure: wrong type: expected"):
        champion.predict(words)


def test_signature_declares_names_and_metadata_declares_types():
    """MLflow enforces nothing it cannot meet (module models.scoring.signature); the contract's types
    are written beside it."""
    from features.catalog import SCORING_RECORD
    from models.scoring.signature import model_metadata, model_signature

    sig = model_signature()
    assert [c.name for c in sig.inputs.inputs] == [f.name for f in SCORING_RECORD]
    assert all(not c.required for c in sig.inputs.inputs)
    fields = model_metadata()["input_contract"]["fields"]
    assert fields["age"] == {"type": "integer", "required": True, "minimum": 16, "maximum": 90}
    assert fields["legal_pressure"] == {"type": "boolean", "required": False}
    assert fields["sex"]["codes"] == ["male", "female", "other", "not_stated"]
    json.dumps(model_metadata())  # the MLmodel file is YAML: plain types only


@pytest.mark.xdist_group("trained")
def test_registered_model_pins_what_it_needs(trained_store):
    """The pyfunc's requirements are given, not inferred (MLflow's inference loads the model in a
    subprocess, about 5 s per run): the package and its numerical stack, at this environment's
    versions, so `mlflow models serve` or a Spark cluster rebuilds the same environment."""
    from importlib.metadata import version

    import mlflow

    with restored_mlflow_uris():
        mlflow.set_tracking_uri(trained_store.uri)
        path = mlflow.artifacts.download_artifacts(
            "models:/alliance-risk@champion/requirements.txt"
        )
    pins = dict(line.split("==") for line in Path(path).read_text().split() if "==" in line)
    for name in ("mlflow", "alliance-risk", "numpy", "pandas", "scikit-learn", "scipy"):
        assert pins.get(name) == version(name), (name, pins)
