"""One shape for every data problem, so a table check and a one-record check read the same.

The contract asks that every violation name the table, the field, the offending value and the row
(admission_id). Values are kept for the person fixing their export; they are never logged by the
service (see serving/), which reports field and reason only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    table: str
    field: str
    reason: str
    value: Any = None
    admission_id: str | None = None
    blocking: bool = True

    def __str__(self) -> str:
        where = f" (admission_id={self.admission_id})" if self.admission_id else ""
        return f"{self.table}.{self.field}: {self.reason}; value={self.value!r}{where}"

    def to_dict(self, include_value: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not include_value:
            d.pop("value")
        return d


class DataError(ValueError):
    """Raised when data break the contract; carries every FieldError found, not just the first."""

    def __init__(self, errors: list[FieldError]):
        self.errors = list(errors)
        head = "; ".join(str(e) for e in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"{len(self.errors)} data error(s): {head}{more}")
