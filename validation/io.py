"""Reading the contract's tables from a folder, without repairing anything on the way.

CSV cells are read as text (ids keep their leading zeros; "abc" in an integer column stays "abc" so
that validation can name it). Only an empty cell counts as missing: strings such as "NA" or "null"
are kept and reported, not silently turned into missing values. Parquet keeps its own column types;
id columns are turned into text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.catalog import REQUIRED_TABLES, TABLES
from validation.rules import text_form

SUFFIXES = (".csv", ".parquet")


class TableLoadError(Exception):
    """A folder or a required table is missing or cannot be read (the CLI exits 2)."""


def _id_columns(table: str) -> list[str]:
    return [f.name for f in TABLES[table] if f.pattern]


def table_path(data_dir: Path, table: str) -> Path | None:
    found = [data_dir / f"{table}{s}" for s in SUFFIXES if (data_dir / f"{table}{s}").is_file()]
    if len(found) > 1:
        raise TableLoadError(
            f"{data_dir}: both {found[0].name} and {found[1].name} exist; keep exactly one"
        )
    return found[0] if found else None


def read_table(path: Path, table: str) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            for col in _id_columns(table):
                if col in df.columns:
                    df[col] = pd.Series(
                        [text_form(v) for v in df[col]], index=df.index, dtype="str"
                    )
        else:
            df = pd.read_csv(
                path,
                dtype="str",
                keep_default_na=False,
                na_values=[""],
                encoding="utf-8-sig",  # spreadsheet exports often start with a byte-order mark
            )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise TableLoadError(f"cannot read {path}: {exc}") from exc
    return df


def load_tables(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read intake, counsellors, alliance (required) and episodes (optional) from a folder.

    Raises TableLoadError for a missing folder, a missing required table or an unreadable file.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TableLoadError(f"data folder {data_dir} does not exist")
    tables: dict[str, pd.DataFrame] = {}
    missing = []
    for table in TABLES:
        path = table_path(data_dir, table)
        if path is None:
            if table in REQUIRED_TABLES:
                missing.append(table)
            continue
        tables[table] = read_table(path, table)
    if missing:
        names = ", ".join(f"{t}.csv (or {t}.parquet)" for t in missing)
        raise TableLoadError(f"{data_dir}: required table(s) missing: {names}")
    return tables
