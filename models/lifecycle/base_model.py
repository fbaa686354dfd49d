"""The model ``pipelines.train --update-from`` adapts, found on any tracking store or in a folder.

Lifecycle's job (finding and loading a registered model), not building's: the pipeline resolves
the spec here and hands building a scorer folder (``train.update_from``), so no building module
reaches back into the registry.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from models.lifecycle.resolve import ModelNotFound, fetch, find_scorer
from models.scoring.scorer import CHECKSUMS, ScoringModel

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class BaseNotFound(ValueError):
    """The model to update cannot be found or read; the message names the spec."""


def load_base(spec: str, tracking_uri: str | None = None) -> ScoringModel:
    """The model to update: ``models:/name@alias`` or ``models:/name/version`` on the tracking
    store ``tracking_uri`` (settings' ``tracking_uri`` when None), or a local folder: an exported
    MLflow model (its ``artifacts/scorer``) or a scorer folder itself (model.json +
    checksums.json). ``params["loaded_from"]`` records the spec (and the version). Raises
    ``BaseNotFound`` naming the spec."""
    if spec.startswith("models:"):
        match = _URI.match(spec)
        if match is None:
            raise BaseNotFound(
                f"--update-from {spec!r}: a registry model is models:/NAME@ALIAS or "
                "models:/NAME/VERSION"
            )
        if tracking_uri is None:
            from features.settings import load_settings

            tracking_uri = load_settings().tracking_uri
        name, alias, version = match["name"], match["alias"], match["version"]
        with tempfile.TemporaryDirectory(prefix="alliance-risk-base-") as tmp:
            try:
                answer = fetch(tracking_uri, name, Path(tmp), version, alias or "champion")
                model = _load_scorer(spec, Path(answer["scorer"]))
            except ModelNotFound as exc:
                raise BaseNotFound(f"--update-from {spec}: {exc}") from exc
        model.params = {**model.params, "loaded_from": f"{spec} (version {answer['version']})"}
        return model
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise BaseNotFound(
            f"--update-from {spec}: no such folder (give an exported model folder, a scorer "
            "folder with model.json and checksums.json, or models:/NAME@ALIAS)"
        )
    if (path / "model.json").is_file() or (path / CHECKSUMS).is_file():
        scorer = path
    else:
        try:
            scorer = find_scorer(path)
        except ModelNotFound as exc:
            raise BaseNotFound(
                f"--update-from {spec}: the folder holds no scorer (no model.json in it or "
                "under it, e.g. artifacts/scorer/model.json of an exported MLflow model)"
            ) from exc
    model = _load_scorer(spec, scorer)
    model.params = {**model.params, "loaded_from": model.params.get("loaded_from") or str(spec)}
    return model


def _load_scorer(spec: str, folder: Path) -> ScoringModel:
    try:
        return ScoringModel.load(folder)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise BaseNotFound(
            f"--update-from {spec}: the scorer at {folder} cannot be read: {exc}"
        ) from exc


# ---------------------------------------------------------------- the base as numbers
