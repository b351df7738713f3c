"""The result record's schema, declared once, and the checks a record passes on every write and read.

The schema is a JSON Schema (``record.schema.json`` beside this module), not a dataclass or a pydantic
model: a record is a file format that people read with other tools (pandas, jq, another language),
so its declaration should be a language-neutral document; ``jsonschema`` (small, pure Python, the
standard's reference implementation) names the path of the field that fails. What a JSON Schema
cannot say is checked here beside it: metrics finite or null with a reason, and the key recomputed
from the configuration. The labels file's hash is the store's to check (it owns the files).
"""

from __future__ import annotations

import json
import math
from importlib.resources import files

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from cutbench.identity import cell_key, fingerprinted_key

SCHEMA: dict = json.loads(files("cutbench").joinpath("record.schema.json").read_text())
"""The record schema (JSON Schema, draft 2020-12)."""

_VALIDATOR = Draft202012Validator(SCHEMA)


def record_problem(record, file_key: str) -> str | None:
    """Why ``record`` (stored as ``<file_key>.json``) is not a valid record, or None when it is.

    Checks, in order: the schema (required fields and their types, by status); every metric a finite
    number, or null with a reason in ``metric_notes``; ``key`` equal to the file's name and to the key
    recomputed from ``config`` (a record whose configuration was edited no longer describes its result).
    """
    error = best_match(_VALIDATOR.iter_errors(record))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":  # "'config' is a required property"
            field = error.message.split("'")[1]
            return f"incomplete record: missing {where + '.' if where else ''}{field}"
        return f"does not match the record schema: {where or 'the record'}: {error.message}"
    if record["status"] == "ok":
        named = record["config"].get("metrics")
        wanted = [metric["name"] for metric in named] if named else ["acc", "nmi"]
        missing = [name for name in wanted if name not in record["metrics"]]
        if missing:
            return f"incomplete record: missing metrics.{missing[0]}"
    notes = record.get("metric_notes") or {}
    for name, value in (record.get("metrics") or {}).items():
        if value is None and name not in notes:
            return f"metric {name!r} is null without a reason in metric_notes"
        if value is not None and not math.isfinite(value):
            return f"metric {name!r} is {value}, not a finite number (store null with a reason instead)"
    if record["key"] != file_key:
        return f"holds key {record['key']!r}, not its file name's"
    if file_key not in (cell_key(record["config"]), fingerprinted_key(record["config"])):
        return (f"its config does not give its key {file_key!r} (the config was edited after the run, so the "
                "record no longer describes its result)")
    return None


def finite_metrics(metrics: dict[str, float]) -> tuple[dict[str, float | None], dict[str, str]]:
    """``metrics`` with every non-finite value replaced by None, and a reason for each one replaced."""
    notes = {name: f"evaluated to {value}, which is not a number a table can use"
             for name, value in metrics.items() if not math.isfinite(value)}
    return {name: (None if name in notes else value) for name, value in metrics.items()}, notes


__all__ = ["SCHEMA", "finite_metrics", "record_problem"]
