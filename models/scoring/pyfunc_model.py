"""The MLflow pyfunc logged with every model ("models from code": nothing of ours is pickled).

Input: a DataFrame of flat scoring records (intake fields with scale scores or item codes, plus
optional counsellor_* attributes), typed however pandas read it: ``pd.read_csv`` /
``pd.read_parquet`` of a contract table scores as is. The signature declares no column types
MLflow would enforce (models/scoring/signature.py says why); ``models.scoring.predict.score_table`` checks the
records with the API's rules instead and raises ``features.errors.DataError`` naming the field,
value and admission_id of every record that breaks the contract.
Output: one row per record with admission_id, risk (calibrated probability), band, and
contrib_<driver group> (that group's contribution in log-odds).
Batch scoring, the service and ``mlflow.pyfunc.load_model("models:/alliance-risk@champion")``
all go through ``models.scoring.predict.score_frame``, so they give the same answers.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from features.settings import BandConfig
from models import artifact as A


class AllianceRiskModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from models.scoring.scorer import ScoringModel

        self.model = ScoringModel.load(context.artifacts[A.SCORER])
        self.bands = BandConfig(**self.model.reference[A.BANDS_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from models.scoring.predict import score_table

        return score_table(self.model, self.bands, pd.DataFrame(model_input))


mlflow.models.set_model(AllianceRiskModel())
