"""Number and table formatting shared by the report and the questions' report sections."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def fmt(v: Any, nd: int = 3) -> str:
    """A number for a table: `-` for missing, integers plain, tiny or huge ones in g format."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        a = abs(v)
        if nd == 2 and a <= 1:
            return f"{v:.2f}"
        if v == int(v) and a < 1e6:
            return str(int(v))
        if a != 0 and (a >= 1e4 or a < 1e-3):
            return f"{v:.{nd}g}"
        return f"{v:.{nd}f}"
    return str(v)


def ci(v: Any) -> str:
    """`[lo, hi]` or `-`."""
    if not v:
        return "-"
    return f"[{fmt(v[0])}, {fmt(v[1])}]"


def md_table(df: pd.DataFrame, max_rows: int = 60) -> str:
    """A markdown table of the first `max_rows` rows."""
    if df.empty:
        return "(none)\n"
    d = df.head(max_rows)
    cols = list(d.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in d.iterrows():
        lines.append("| " + " | ".join(fmt(r[c]) if not isinstance(r[c], str) else r[c] for c in cols) + " |")
    if len(df) > max_rows:
        lines.append(f"\n({len(df) - max_rows} more rows in the CSV)")
    return "\n".join(lines) + "\n"


def num(v: Any) -> str:
    """A float that is an integer without its `.0`."""
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return str(int(v))
    return str(v)
