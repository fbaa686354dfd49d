"""Train, evaluate, explain, track and register an alliance-risk model.

    python -m pipelines.train [--input DIR] [--config FILE] [--rater client|counsellor|either]
                              [--threshold X] [--experiment NAME] [--no-promote] [--oracle]

Steps: validate (a blocking failure stops here and registers nothing) -> features and labels ->
candidates (tuned and calibrated inside grouped CV) -> selection and figures from repeated grouped
CV on all labelled admissions (a held-out split only at large n; models.building.training) -> global
explanation -> MLflow run -> promotion gate (figures with their CIs; models.lifecycle.gate) ->
registry version -> champion alias (last). --oracle adds the simulator's true probabilities.
With no --input (alias --data), the synthetic cohort in data/synthetic is used (generated first if absent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from pipelines import cli

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("train", __doc__)
    cli.add_input(
        p,
        "folder with intake, counsellors, alliance (and episodes) tables; default: the synthetic "
        "cohort in data/synthetic of the checkout (settings data_dir)",
        aliases=("--data",),
        metavar="DIR",
    )
    p.add_argument(
        "--rater",
        choices=["client", "counsellor", "either"],
        help="whose WAI-S ratings define the label (default client)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="WAI-S item mean below which the alliance is low (default 5.0)",
    )
    p.add_argument(
        "--min-valid-weeks",
        type=int,
        choices=[1, 2, 3],
        help="valid weeks a client needs to be labelled (default 1)",
    )
    p.add_argument("--experiment", help="MLflow experiment name (default alliance-risk)")
    p.add_argument("--seed", type=int, help="seed for splits and tuning (default 7)")
    p.add_argument(
        "--candidates",
        nargs="+",
        choices=["ridge", "anchored", "spline", "lightgbm", "logistic"],
        help="model families to compare (default ridge and spline, with the ridge replaced by "
        "'anchored' below the minimum sample size; one name forces that family)",
    )
    p.add_argument(
        "--prior",
        metavar="literature|none|FILE",
        help="published effects the 'anchored' candidate shrinks towards: 'literature' (default, "
        "models/priors/literature-v1.toml, sources in docs/domain.md), 'none', or a TOML file",
    )
    p.add_argument(
        "--update-from",
        metavar="MODEL",
        help="adapt an existing model instead of fitting a new one: a models:/NAME@ALIAS or "
        "models:/NAME/VERSION URI on the tracking store (MLFLOW_TRACKING_URI, or "
        "--update-tracking-uri), or a folder "
        "(an exported MLflow model or a scorer folder). Closed testing picks as-is, "
        "recalibration in the large, logistic recalibration or a revision shrunk towards it",
    )
    p.add_argument(
        "--update-tracking-uri",
        metavar="URI",
        help="the tracking store that holds --update-from's models:/ URI, when it is not this "
        "run's own: another service's or a network's tracking server (http://...) or database "
        "(sqlite:///...); the adapted model is still logged and registered in this run's store",
    )
    p.add_argument(
        "--no-promote",
        action="store_true",
        help="register the version but never move the champion alias",
    )
    p.add_argument(
        "--if-no-champion",
        action="store_true",
        help="do nothing if a champion already exists (used by make run)",
    )
    p.add_argument(
        "--oracle",
        action="store_true",
        help="also score the simulator's true probabilities (ground_truth files) for comparison",
    )
    p.add_argument(
        "--synthetic-n",
        type=int,
        default=5000,
        help="size of the synthetic cohort generated when --input is absent (default 5000)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = cli.console()
    settings, code = cli.settings_or_exit(
        console,
        args.config,
        2,
        label__rater=args.rater,
        label__threshold=args.threshold,
        label__min_valid_weeks=args.min_valid_weeks,
        train__experiment=args.experiment,
        train__seed=args.seed,
        train__candidates=tuple(args.candidates) if args.candidates else None,
        train__prior=args.prior,
        train__update_from=args.update_from,
        train__update_tracking_uri=args.update_tracking_uri,
        data_dir=args.input,
    )
    if settings is None:
        return code

    from models.building.priors import PriorError, load

    try:
        load(settings.train.prior)  # a prior that cannot be read stops here, not mid-run
    except PriorError as exc:
        console.print(f"[red]--prior:[/red] {exc}")
        return 2
    if settings.train.update_from:  # from --update-from, or train.update_from in settings
        settings, code = _resolve_update_from(settings, settings.train.update_from, console)
        if settings is None:
            return code

    from models.lifecycle.registry import champion_version
    from models.lifecycle.store import get_client

    client = get_client(settings.tracking_uri)
    name = settings.train.registered_model
    if args.if_no_champion and champion_version(client, name) is not None:
        v = champion_version(client, name)
        console.print(f"A champion already exists ({name} version {v.version}); nothing to train.")
        return 0

    return run(
        settings,
        client,
        console,
        synthetic_n=args.synthetic_n,
        promote=not args.no_promote,
        data_given=args.input is not None,
        oracle=args.oracle,
    )


class StepFailed(Exception):
    """A step refused the data; the message says why and nothing was registered."""


def _ensure_data(settings, console, synthetic_n: int, data_given: bool) -> Path:
    data_dir = Path(settings.data_dir)
    if (data_dir / "intake.csv").exists() or (data_dir / "intake.parquet").exists():
        return data_dir
    if data_given:
        raise StepFailed(f"{data_dir} holds no intake table (intake.csv or intake.parquet)")
    from simulator.generator import generate, write

    console.print(
        f"No data in {data_dir}: generating a SYNTHETIC cohort of {synthetic_n} clients (seed 7)."
    )
    write(generate(synthetic_n, seed=7), data_dir)
    return data_dir


def _is_synthetic(data_dir: Path) -> bool:
    """Data written by the simulator carry its ground-truth metadata; the card then says SYNTHETIC."""
    return (data_dir / "ground_truth.json").exists()


def _ground_truth(data_dir: Path, label: dict, frame_ids):
    """The generator's true probabilities and driver ranking (only with --oracle), when the data are
    our synthetic ones and the label definition is the one the generator computed them for."""
    import pandas as pd

    meta_path, gt_path = data_dir / "ground_truth.json", data_dir / "ground_truth.csv"
    if not (meta_path.exists() and gt_path.exists()):
        return None, None
    meta = json.loads(meta_path.read_text())
    gt = pd.read_csv(gt_path, dtype={"admission_id": "str"}).set_index("admission_id")
    made_for = meta.get("summary", {}).get("label", {})
    # The true probabilities were computed for one label definition; compare only like with like.
    same = float(made_for.get("threshold", -1)) == float(label["threshold"]) and int(
        made_for.get("min_valid_weeks", -1)
    ) == int(label["min_valid_weeks"])
    # Splits are grouped by counsellor or service, so test clients meet counsellors the model has
    # never seen: the fair ceiling is the probability that does not know which counsellor it is.
    col = next(
        (
            c
            for c in (f"p_low_alliance_{label['rater']}_no_ids", f"p_low_alliance_{label['rater']}")
            if c in gt
        ),
        None,
    )
    oracle = gt[col].reindex(frame_ids).to_numpy() if (same and col) else None
    ranking = [r["group"] for r in meta.get("driver_ranking", {}).get("ranking", [])] or None
    return oracle, ranking


def run(
    settings,
    client,
    console,
    synthetic_n: int = 5000,
    promote: bool = True,
    data_given: bool = False,
    oracle: bool = False,
) -> int:
    import mlflow
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from models import artifact as A
    from models.lifecycle import registry, store

    t0 = time.perf_counter()
    store.ensure_experiment(settings.tracking_uri, settings.train.experiment)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        started: dict = {}

        def step(text: str):
            task = progress.add_task(text, total=1)
            started[task] = (text, time.perf_counter())
            return task

        def done(task, text: str):
            progress.update(task, completed=1, description=text)
            # Wall time and peak memory so far, per step (bench/train_scaling.py prints them).
            name, t = started.pop(task)
            if mlflow.active_run() is not None:
                key = "".join(c if c.isalnum() else "_" for c in name.split(",")[0].lower())
                mlflow.log_metrics(
                    {f"step_{key}_s": time.perf_counter() - t, f"step_{key}_peak_mb": _peak_mb()}
                )

        log = lambda msg: progress.console.log(msg)  # noqa: E731
        try:
            task = step("data")
            data_dir = _ensure_data(settings, console, synthetic_n, data_given)
            done(task, f"data: {data_dir}")

            with mlflow.start_run() as active:
                run_id = active.info.run_id
                mlflow.set_tag("stage", "validation")
                task = step("validate")
                from validation.io import load_tables
                from validation.report import validate_tables

                tables = load_tables(data_dir)
                report = validate_tables(tables, settings.validation)
                with tempfile.TemporaryDirectory() as tmp:
                    html = Path(tmp) / "validation_report.html"
                    html.write_text(report.to_html())
                    mlflow.log_artifact(str(html), A.VALIDATION_DIR)
                mlflow.log_metric("validation_errors", len(report.errors))
                if report.blocking:
                    done(task, "[red]validate: blocking failures[/red]")
                    progress.stop()
                    from validation.report import print_summary

                    print_summary(report, console)
                    mlflow.set_tag("outcome", "refused: validation failed")
                    raise StepFailed(
                        f"validation found {len(report.errors)} problem(s) in {data_dir}; nothing was registered"
                    )
                done(task, f"validate: passed ({len(report.errors)} non-blocking notes)")

                task = step("features and labels")
                from features.build import scoring_frame, typed_records
                from features.labels import build_labels, in_index
                from models.scoring.predict import frame_to_matrix
                from validation.suites import training_sanity

                labels = build_labels(
                    tables["alliance"], settings.label, tables["intake"], tables.get("episodes")
                )
                problems = training_sanity(labels.labels, settings.validation)
                if problems:
                    mlflow.set_tag("outcome", "refused: training-set sanity")
                    raise StepFailed("; ".join(str(e) for e in problems))
                frame = typed_records(scoring_frame(tables["intake"], tables.get("counsellors")))
                frame = frame[
                    in_index(frame["admission_id"].astype(str), labels.labels.index)
                ].reset_index(drop=True)
                y = labels.labels.reindex(frame["admission_id"].astype(str)).to_numpy().astype(int)
                X, scored, item_errors = frame_to_matrix(frame)
                if item_errors:
                    raise StepFailed(
                        f"{len(item_errors)} item/scale problem(s), first: {item_errors[0]}"
                    )
                synthetic = _is_synthetic(data_dir)
                oracle_p, ranking = (
                    _ground_truth(data_dir, labels.definition, frame["admission_id"].astype(str))
                    if oracle
                    else (None, None)
                )
                done(
                    task,
                    f"features and labels: {len(y)} labelled clients, {y.mean():.1%} low alliance; {labels.counts}",
                )

                task = step("sample size")
                settings, sample = _sample_size(settings, client, y, log)
                done(
                    task,
                    f"sample size: {'enough' if sample.enough else 'below'} the minimum n {sample.minimum_n:,}",
                )

                task = step("candidates, evaluation, explanation")
                from models.building.training import train_models

                result = train_models(
                    settings, scored, X, y, oracle=oracle_p, true_ranking=ranking, log=log
                )
                result.sample_size = sample.to_dict()
                # ---- issue 19: the weekly early-warning models (models/building/weekly.py) ----
                # Fitted on the champion's out-of-fold log-odds and stored in the same scorer
                # (ScoringModel.weekly), so they are registered in the same version.
                from models.building.weekly import fit_weekly

                result.weekly = fit_weekly(
                    settings,
                    result,
                    scored,
                    tables["alliance"],
                    tables["intake"],
                    tables.get("episodes"),
                    log=log,
                )
                # ---- end issue 19 ----
                from models.building.evaluation import evaluate

                evaluation = evaluate(settings, result, scored, synthetic)
                done(task, f"candidates: champion candidate {result.champion}")

                task = step("logging to MLflow")
                from models.building.tracking import log_model_card, log_run

                model_uri, _, card = log_run(
                    settings, result, evaluation, labels, tables, data_dir, scored
                )
                done(task, f"logged run {run_id}")

                task = step("promotion gate")
                name = settings.train.registered_model
                from models.lifecycle.gate import gate, gate_evidence

                evidence = gate_evidence(client, name, scored, result, settings.train)
                decision = gate(evidence, settings.train)
                mlflow.set_tag("gate", decision.reason[:5000])
                verdict = f"gate: {'promote' if decision.promote else 'refuse'}: {decision.reason}"
                log(verdict)
                done(task, verdict)

                # The alias is the last thing a run touches: a crash or kill before it leaves the
                # champion as it was (tests/model/test_training.py kills at each point below).
                task = step("registration and promotion")
                _pause_for_tests("before_registration", log)
                mv = mlflow.register_model(model_uri, name)
                version = str(mv.version)
                log(f"registered version {version}")
                log_model_card(card, version)  # the card names the version it describes
                _pause_for_tests("before_alias", log)
                if promote and decision.promote:
                    registry.set_champion(client, name, version, decision.reason)
                    outcome = f"version {version} is the new champion: {decision.reason}"
                    _export_champion(mlflow.get_tracking_uri(), name, log)
                else:
                    why = decision.reason if not decision.promote else "--no-promote given"
                    registry.set_challenger(client, name, version, why)
                    outcome = f"version {version} registered as challenger: {why}"
                mlflow.set_tag("outcome", outcome)
                done(task, outcome)
        except StepFailed as exc:
            console.print(f"[red]training stopped:[/red] {exc}")
            return 1
    _summary(console, result, outcome, time.perf_counter() - t0, synthetic)
    return 0


def _resolve_update_from(settings, spec: str, console):
    """Read the model --update-from names (any tracking store or a folder) and keep a copy of
    its scorer for this run; the candidates become "updated" unless --candidates was given.
    A model that cannot be read stops here, before anything is logged or registered."""
    from models.lifecycle.base_model import BaseNotFound, load_base

    try:
        base = load_base(spec, settings.train.update_tracking_uri or settings.tracking_uri)
    except BaseNotFound as exc:
        hint = ""
        if spec.startswith("models:") and not settings.train.update_tracking_uri:
            hint = (
                " (a model on another tracking store: name that store with --update-tracking-uri)"
            )
        console.print(f"[red]--update-from:[/red] {exc}{hint}")
        return None, 2
    folder = base.save(Path(tempfile.mkdtemp(prefix="alliance-risk-base-")) / "scorer")
    console.print(f"updating {spec} (a {base.kind} model) instead of fitting a new one")
    cfg = settings.train
    update: dict = {"update_from": str(folder)}
    if "candidates" not in cfg.model_fields_set:
        update["candidates"] = ("updated",)
    elif "updated" not in cfg.candidates:
        update["candidates"] = ("updated", *cfg.candidates)
    train = cfg.model_copy(update=update)
    return settings.model_copy(update={"train": train}), 0


def _anticipated_r2(settings, client, prevalence: float) -> tuple[float, str]:
    """The anticipated Cox-Snell R^2 for the sample-size criteria, and where it came from: the
    existing champion's cross-validated log loss on its own data, else the literature prior's
    effects, else Riley et al.'s conservative default (Nagelkerke 0.15)."""
    import numpy as np

    from models.building import sample_size as S
    from models.building.priors import load

    name = settings.train.registered_model
    try:
        from models.lifecycle.registry import champion_version

        mv = champion_version(client, name)
        if mv is not None:
            m = client.get_run(mv.run_id).data.metrics
            if "test_log_loss" in m and "null_log_loss" in m and m["null_log_loss"] > 0:
                # the champion's own prevalence, from its null log loss
                lo, hi = 1e-6, 0.5
                for _ in range(80):
                    mid = (lo + hi) / 2
                    ll = -(mid * np.log(mid) + (1 - mid) * np.log(1 - mid))
                    lo, hi = (mid, hi) if ll < m["null_log_loss"] else (lo, mid)
                r2 = S.r2_cs_from_log_loss(m["test_log_loss"], (lo + hi) / 2)
                if r2 > 0:
                    return r2, f"the champion, {name} version {mv.version}"
    except Exception:  # an unreadable registry is not a reason to stop training
        pass
    prior = load(settings.train.prior)
    if prior is not None:
        r2 = prior.anticipated_r2_cs(prevalence)
        if r2 > 0:
            return r2, f"the prior {prior.version}"
    return S.default_r2_cs(prevalence), "Riley et al.'s default, Nagelkerke R2 0.15"


def _sample_size(settings, client, y, log):
    """Riley et al. 2020's criteria for the ridge's parameters at this n; below them, unless
    train.candidates was set, the ridge is replaced by the anchored candidate."""
    import numpy as np

    from models.building import sample_size as S
    from models.building.estimators import RAW_COLUMNS

    prevalence = float(np.mean(y))
    r2, source = _anticipated_r2(settings, client, prevalence)
    sample = S.criteria(len(y), int(RAW_COLUMNS.sum()), prevalence, r2, source)
    log(sample.summary())
    cfg = settings.train
    if (
        not sample.enough
        and cfg.steer_by_sample_size
        and "candidates" not in cfg.model_fields_set
        and cfg.prior != "none"
        and "ridge" in cfg.candidates
    ):
        steered = tuple("anchored" if c == "ridge" else c for c in cfg.candidates)
        log(
            f"candidates {', '.join(cfg.candidates)} -> {', '.join(steered)}: below the minimum "
            f"sample size the ridge (shrunk towards zero) is replaced by the ridge shrunk towards "
            f"the published prior ({cfg.prior})"
        )
        settings = settings.model_copy(
            update={"train": cfg.model_copy(update={"candidates": steered})}
        )
    return settings, sample


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pause_for_tests(point: str, log) -> None:
    """Fault injection for the kill tests: with ALLIANCE_RISK_TEST_PAUSE_AT=<point>[,<point>...]
    the run says "paused at <point>" and waits there for a line on its stdin (up to 600 s), so a
    test can look at the store exactly as a kill at that point would leave it, then kill it or
    let it go on to the next point (no effect without the variable). A line on stdin, not a
    signal: a signal blocked in this thread can still be delivered to one of BLAS's or the
    progress display's threads, whose default action ends the process."""
    points = {p.strip() for p in os.environ.get("ALLIANCE_RISK_TEST_PAUSE_AT", "").split(",")}
    if point not in points:
        return
    import select

    log(f"paused at {point}")
    sys.stdout.flush()
    if select.select([sys.stdin], [], [], 600)[0]:
        sys.stdin.readline()


def _export_champion(tracking_uri: str, name: str, log) -> None:
    """Copy the new champion into BentoML's model store (models/lifecycle/bento_store.py), where the service
    loads it. The registry is the source of truth and has moved already: a failed export is
    logged, and the next ``python -m pipelines.serve`` exports it."""
    from models.lifecycle.bento_store import store_path, sync

    try:
        log(f"exported to BentoML's model store {store_path()} as {sync(tracking_uri, name)}")
    except Exception as exc:
        log(
            f"not exported to BentoML's model store {store_path()} ({type(exc).__name__}: {exc}); "
            "`python -m pipelines.serve` exports it at its next start"
        )


def _summary(console, result, outcome: str, seconds: float, synthetic: bool) -> None:
    from rich.table import Table

    proto = result.protocol
    where = (
        f"out-of-fold, {proto.n_repeats} x {proto.n_splits}-fold grouped CV"
        if proto.name == "cv"
        else "held-out split"
    )
    t = Table(title="alliance-risk training summary" + (" (SYNTHETIC data)" if synthetic else ""))
    t.add_column("candidate")
    for c in ("log loss", "- best", "SE", "AUROC", "Brier", "cal. slope"):
        t.add_column(c, justify="right")
    for _, r in result.cv_summary.iterrows():
        t.add_row(
            r["candidate"] + (" *" if r["candidate"] == result.champion else ""),
            f"{r.log_loss:.4f}",
            f"{r.diff_vs_best:+.4f}",
            f"{r.se:.4f}",
            f"{r.auroc:.3f}",
            f"{r.brier:.4f}",
            f"{r.cal_slope:.2f}",
        )
    console.print(t)
    m = Table(
        title=f"{result.champion}: {where} on {len(result.test_frame):,} clients, 95% cluster-bootstrap CIs"
    )
    m.add_column("metric")
    m.add_column("model [95% CI]", justify="right")
    if result.oracle_metrics:
        m.add_column("oracle", justify="right")
        m.add_column("gap", justify="right")
    for k in ("auroc", "auprc", "brier", "log_loss", "cal_intercept", "cal_slope", "ece"):
        pt, lo, hi = result.test_metrics[k]
        row = [k, f"{pt:.3f} [{lo:.3f}, {hi:.3f}]"]
        if result.oracle_metrics:
            o = result.oracle_metrics[k][0]
            row += [f"{o:.3f}", f"{pt - o:+.3f}"]
        m.add_row(*row)
    console.print(m)
    console.print(f"protocol: {proto.why}")
    console.print(f"why {result.champion}: {result.reason}")
    console.print(f"registry: {outcome}")
    console.print(f"total time {seconds:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
