"""The logged model's input and output schema, and the input contract, from the field catalog.

Why the inputs are ``AnyType`` and all optional (MLflow 3.17's schema enforcement,
``mlflow.models.utils._enforce_mlflow_datatype``): a column declared ``double`` refuses the int64
that ``pd.read_csv`` gives for whole numbers ("Can not safely convert int64 to float64": only
integers of at most 6 bytes, or columns of 0 and 1, pass); a column declared ``long`` refuses the
float64 the same reader gives once one cell is empty; ``string`` refuses an id column of digits
(int64) and an optional code column left empty (float64); ``boolean`` refuses "true"/"false" text;
and a ``required`` column that is absent fails with "Model is missing inputs" before our code
runs. No declared type accepts every valid contract table, so MLflow is told the column names and
nothing else, and ``models.scoring.predict.score_table`` checks every record with the API's own rules
(field-named errors). ``AnyType`` columns pass through ``mlflow.pyfunc.spark_udf`` as well (only
output types are mapped to Spark there).

The types a reader can trust are in the logged model's metadata (``input_contract``, written into
the MLmodel file and returned by ``mlflow.models.get_model_info(uri).metadata``): each field's
contract kind, whether it is required, and its codes or range, from features/catalog.py.
"""

from __future__ import annotations

from typing import Any

from mlflow.models.signature import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from features.catalog import DRIVER_GROUPS, SCORING_RECORD, Field

CONTRACT = "alliance-risk data contract v1 (docs/data-contract.md), flat scoring record"


def model_signature() -> ModelSignature:
    inputs = Schema([ColSpec(AnyType(), f.name, required=False) for f in SCORING_RECORD])
    outputs = Schema(
        [
            ColSpec("string", "admission_id"),
            ColSpec("double", "risk"),
            ColSpec("string", "band"),
            *(ColSpec("double", f"contrib_{g}") for g in DRIVER_GROUPS),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _field_contract(f: Field) -> dict[str, Any]:
    d: dict[str, Any] = {"type": f.kind, "required": f.required}
    if f.codes:
        d["codes"] = list(f.codes)
    if f.minimum is not None:
        d["minimum"] = f.minimum
    if f.maximum is not None:
        d["maximum"] = f.maximum
    return d


def model_metadata() -> dict[str, Any]:
    """What the MLmodel file records about the input beside the signature."""
    return {
        "input_contract": {
            "contract": CONTRACT,
            "validated_by": "models.scoring.predict.score_table (raises features.errors.DataError)",
            "fields": {f.name: _field_contract(f) for f in SCORING_RECORD},
        }
    }
