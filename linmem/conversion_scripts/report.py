"""The conversion report: what was copied, reshaped, created and dropped, parameter counts, checks.

`conversion_report.json` is written next to the converted checkpoint; `linmem validate` appends its
checks to the same file. `format_plan` is the human-readable mapping printed by `--dry-run`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .plan import MAPPING_VERSION, ConversionPlan
from .source import SourceCheckpoint

REPORT_NAME = "conversion_report.json"


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def build_report(plan: ConversionPlan, source: SourceCheckpoint, target_shapes: dict[str, tuple[int, ...]],
                 record: dict[str, Any], checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON-serialisable report of a planned (dry run) or executed conversion."""
    copied = [{"target": t, "source": r.sources[0]} for t, r in plan.rules.items() if r.action == "copied"]
    reshaped = [{"target": t, "sources": list(r.sources), "note": r.note.strip()}
                for t, r in plan.rules.items() if r.action == "reshaped"]
    new = [{"target": t, "shape": list(target_shapes[t]), "init": n.description} for t, n in plan.new.items()]
    dropped = [{"source": s, "shape": list(source.shape(s)), "reason": why} for s, why in plan.dropped.items()]
    return {
        "mapping_version": MAPPING_VERSION,
        "conversion": record,
        "target": plan.target_name,
        "target_model_type": plan.target_config.model_type,
        "source_kind": plan.source_kind,
        "kept_softmax_layers": plan.kept_softmax_layers,
        "copied": copied,
        "reshaped": reshaped,
        "new": new,
        "dropped": dropped,
        "parameter_counts": {
            "source": sum(_numel(source.shape(k)) for k in source.keys()),
            "target": sum(_numel(s) for s in target_shapes.values()),
            "new": sum(_numel(target_shapes[t]) for t in plan.new),
            "dropped": sum(_numel(source.shape(s)) for s in plan.dropped),
        },
        "notes": plan.notes,
        "checks": checks or [],
    }


def format_plan(report: dict[str, Any]) -> str:
    """A readable listing of the mapping (for `--dry-run`)."""
    lines = [f"{report['conversion']['source_id']} ({report['conversion']['source_model_type']}) -> "
             f"{report['target']} ({report['target_model_type']}), {report['mapping_version']}"]
    counts = report["parameter_counts"]
    lines.append(f"parameters: source {counts['source']:,}  target {counts['target']:,}  new {counts['new']:,}  "
                 f"dropped {counts['dropped']:,}")
    if report["kept_softmax_layers"]:
        lines.append(f"softmax layers kept: {report['kept_softmax_layers']}")
    lines.append(f"copied ({len(report['copied'])}):")
    lines += [f"  {c['source']} -> {c['target']}" if c["source"] != c["target"] else f"  {c['target']}"
              for c in report["copied"]]
    lines.append(f"reshaped ({len(report['reshaped'])}):")
    lines += [f"  {', '.join(r['sources'])} -> {r['target']}{'  ' + r['note'] if r['note'] else ''}"
              for r in report["reshaped"]]
    lines.append(f"new ({len(report['new'])}):")
    lines += [f"  {n['target']} {tuple(n['shape'])}: {n['init']}" for n in report["new"]]
    lines.append(f"dropped ({len(report['dropped'])}):")
    lines += [f"  {d['source']}: {d['reason']}" for d in report["dropped"]]
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def append_checks(directory: str | Path, section: str, checks: list[dict[str, Any]]) -> Path | None:
    """Add a named section of checks (e.g. "validation") to an existing conversion_report.json."""
    path = Path(directory) / REPORT_NAME
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    report[section] = checks
    return write_report(report, path)
