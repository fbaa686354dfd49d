"""Shared test fixtures. The harness they are built on (a valid cohort, a trained store, the
pipelines as commands, a live service, the prerequisite rule) lives in harness/, which the
benchmarks import too.

``valid_tables``: a small cohort that satisfies data contract v1 (harness.cohort). Tests copy
it and corrupt one value.
"""

from __future__ import annotations

import os
import sys

import pandas as pd
import pytest

from harness.cohort import make_valid_tables
from harness.commands import (
    Store,
    launch_service,
    restored_mlflow_uris,
    shared_store,
    train_store,
)

# Great Expectations imports pyspark.sql.connect when PySpark is installed (the spark extra), and
# that module calls sys.exit(0) when __main__ has neither __spec__ nor __file__, which is the case
# in a pytest-xdist worker. Give the worker's __main__ a file name so the import proceeds.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# ---------------------------------------------------------------------------------------------
# MLflow keeps the tracking and registry URIs in module globals, and set_tracking_uri also writes
# MLFLOW_TRACKING_URI into os.environ (so later subprocesses inherit it). Code under test sets
# them (models.lifecycle.store.get_client, models.lifecycle.resolve.fetch), so every test gets them back as they were.


@pytest.fixture(autouse=True, scope="session")
def _bentoml_home(tmp_path_factory):
    """Training and promotion export the champion to BentoML's model store
    (models/lifecycle/bento_store.py): never into the machine's own ~/bentoml from a test."""
    os.environ["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml_home"))
    yield


@pytest.fixture(autouse=True)
def _mlflow_uris_restored():
    with restored_mlflow_uris():
        yield


@pytest.fixture(autouse=True)
def _registry_uri_stays_in_its_test():
    """``mlflow.set_registry_uri`` writes MLFLOW_REGISTRY_URI into os.environ, and the code honours
    that variable as MLflow does (models.lifecycle.store.registry_uri): without this, a test that names
    a registry would send every later test's subprocesses to it."""
    before = os.environ.get("MLFLOW_REGISTRY_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    else:
        os.environ["MLFLOW_REGISTRY_URI"] = before
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_registry_uri("")  # registry follows the tracking store again


@pytest.fixture
def valid_tables() -> dict[str, pd.DataFrame]:
    return make_valid_tables()


@pytest.fixture
def valid_dir(tmp_path, valid_tables):
    """The valid cohort written as CSV files in a temporary folder."""
    d = tmp_path / "data"
    d.mkdir()
    for name, df in valid_tables.items():
        df.to_csv(d / f"{name}.csv", index=False)
    return d


SHARED_STORE = "trained_store"  # in the run's base folder, the parent of each worker's


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id) -> Store:
    """A real trained champion in a throw-away tracking store, made by running the training
    command itself, once per test run. Tests that use it carry @pytest.mark.xdist_group("trained")
    so that, under `pytest -n 2 --dist loadgroup`, most of them share one worker.

    The live service's tests (group "served") need it too and may land on the other worker: it is
    trained once, in a folder both workers see, behind a file lock (``harness.commands.
    shared_store``), and each worker then works on a clone of its own (``Store.clone``: every
    file, the registry's paths moved), so a test that damages an artifact damages only its
    worker's. It saves a training when the second worker asks after the first has finished; when
    both ask at the start, the second waits about as long as training would take."""
    if worker_id == "master":  # not under xdist
        return train_store(tmp_path_factory.mktemp("store"))
    store = shared_store(tmp_path_factory.getbasetemp().parent / SHARED_STORE)
    return store.clone(tmp_path_factory.getbasetemp() / "store")


@pytest.fixture(scope="session")
def service(trained_store, tmp_path_factory):
    """A live ``bentoml serve`` of the trained store's champion, one per test worker that asks.

    Expensive fixtures in this suite are session-scoped, not module-scoped: under xdist a worker
    runs other modules' tests between one module's tests, and pytest tears a module fixture down
    whenever the next test is in another module, so it was built again (the three-run ladder of
    tests/model/test_training.py took 2 x 640 s of setup in one loaded run)."""
    # With BentoML's access log on (off by default, serving.access_log): the privacy test reads
    # its lines and holds them to "paths only, no values".
    svc = launch_service(
        tmp_path_factory.mktemp("serve"),
        trained_store.uri,
        extra_env={"ALLIANCE_RISK_SERVING__ACCESS_LOG": "true"},
    )
    yield svc
    svc.stop()
