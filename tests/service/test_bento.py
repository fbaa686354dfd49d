"""Deployable: `bentoml build` makes a Bento of the repository (into a temporary BENTOML_HOME),
with the project's dependencies, the service code and the page, and nothing private; building
imports the service without reading the registry (the service reads no registry at all: it loads
the champion from BentoML's model store, models/lifecycle/bento_store.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_bentofile_packages_are_the_project_dependencies():
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert bentofile["python"]["packages"] == deps
    assert bentofile["service"] == "serving.service:AllianceRisk"


PRIVATE_BENTOML = ("_bentoml_sdk", "_bentoml_impl", "bentoml._internal")


def test_no_private_bentoml_import():
    """Only BentoML's public API (``bentoml.*``): a private module is what forced a patch-level
    pin (issue 13), so the project's code imports none. The tests may: test_timers.py checks
    serving/timers.py against BentoML's own (private) timeout middleware on purpose."""
    import ast

    found = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in (".venv", "build", "tests") or "site-packages" in rel.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            found += [f"{rel}:{node.lineno} {n}" for n in names if n.startswith(PRIVATE_BENTOML)]
    assert not found, found


@pytest.mark.slow
def test_bentoml_build_makes_a_bento(tmp_path):
    home = tmp_path / "bentoml"
    db = tmp_path / "registry" / "mlflow.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_RISK_")},
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "GX_ANALYTICS_ENABLED": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    assert name == "alliance_risk"
    bento = home / "bentos" / name / version
    assert (bento / "bento.yaml").is_file()
    src = bento / "src"
    for f in ("serving/service.py", "serving/metrics.py", "serving/static/index.html"):
        assert (src / f).is_file(), f
    assert (src / "features" / "catalog.py").is_file() and (
        src / "models" / "scoring" / "actions.csv"
    ).is_file()
    assert not (src / "tests").exists() and not (src / "data").exists()
    assert not list(src.rglob("*.key")) and not list(src.rglob("*.sqlite*"))
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    for pkg in ("lightgbm", "mlflow", "bentoml", "scikit-learn"):
        assert pkg in reqs
    assert (bento / "env" / "docker" / "Dockerfile").is_file()
    # The build imported the service but never read the registry: the store was not opened.
    assert not db.exists() and not db.parent.exists()


def test_registry_uri_follows_mlflow_registry_uri(monkeypatch):
    from models.lifecycle.store import registry_uri

    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert registry_uri("sqlite:///t.db") == "sqlite:///t.db"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///registry.db")
    assert registry_uri("https://mlflow.example.internal") == "sqlite:///registry.db"
