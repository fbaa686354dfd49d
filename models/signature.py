"""The logged model's input and output schema, derived from the field catalog."""

from __future__ import annotations

from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from features.catalog import DRIVER_GROUPS, SCORING_RECORD

# Integers arrive as floats whenever a column has a gap, and dates travel as ISO strings.
_TYPES = {
    "string": "string",
    "date": "string",
    "code": "string",
    "integer": "double",
    "number": "double",
    "boolean": "boolean",
}


def model_signature() -> ModelSignature:
    inputs = Schema([ColSpec(_TYPES[f.kind], f.name, required=f.required) for f in SCORING_RECORD])
    outputs = Schema(
        [
            ColSpec("string", "admission_id"),
            ColSpec("double", "risk"),
            ColSpec("string", "band"),
            *(ColSpec("double", f"contrib_{g}") for g in DRIVER_GROUPS),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)
