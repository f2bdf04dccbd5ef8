"""How the platform's names become MLflow names: metric keys without ``@``, nested dicts flattened."""

from __future__ import annotations

import json
from collections.abc import Mapping


def metric_name(name: str) -> str:
    """``ndcg@10`` -> ``ndcg_at_10``, ``history_16+`` -> ``history_16plus`` (MLflow allows only ``[/\\w.\\- :]``)."""
    return name.replace("@", "_at_").replace("+", "plus")


def group_metrics(result: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Flatten an evaluation result to MLflow names: ``{"<group>/<metric>_at_<k>": value}``."""
    return {metric_name(f"{group}/{name}"): float(v) for group, vals in result.items() for name, v in vals.items()}


def numeric_leaves(d: Mapping, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict under slash-joined, MLflow-safe keys (booleans and text left out)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(numeric_leaves(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[metric_name(f"{prefix}{k}")] = v
    return out


def flat_params(params: Mapping, prefix: str = "") -> dict:
    """Nested parameters as ``a.b.c`` keys; lists become JSON text (MLflow params are flat strings)."""
    out = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flat_params(v, f"{name}."))
        else:
            out[name] = json.dumps(v) if isinstance(v, list) else v
    return out
