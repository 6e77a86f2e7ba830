"""Lines as JSON, so a reservation remembers exactly what it holds."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from llmledger.budgets.lines import Line
from llmledger.core.periods import Period


def line_to_json(line: Line) -> dict[str, Any]:
    p = line.period
    return {
        "b": line.budget_id,
        "a": line.allocation_id,
        "k": p.kind,
        "d": p.start_date.isoformat(),
        "s": p.start.isoformat(),
        "e": p.end.isoformat(),
        "l": line.limit_nanos,
        "h": line.hard,
        "t": list(line.thresholds),
        "n": line.label,
        "f": [list(pair) for pair in line.ledger_filter],
    }


def line_from_json(raw: dict[str, Any]) -> Line:
    period = Period(
        raw["k"],
        date.fromisoformat(raw["d"]),
        datetime.fromisoformat(raw["s"]),
        datetime.fromisoformat(raw["e"]),
    )
    return Line(
        raw["b"],
        raw["a"],
        period,
        raw["l"],
        raw["h"],
        tuple(raw["t"]),
        raw["n"],
        tuple((str(c), int(v)) for c, v in raw["f"]),
    )
