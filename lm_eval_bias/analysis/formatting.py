"""Text formatting of numbers and run descriptions, one definition for every renderer (compare's
terminal and Markdown output, the report's Markdown and HTML, the CLI's summary lines)."""

from __future__ import annotations

from typing import Any

#: Keys of a `config.quantization` record worth a place in the one-line run description (the
#: JSON outputs keep the whole record).
QUANT_KEYS = ("bits", "group_size", "sym", "scheme", "act_bits", "weight_dtype", "library")


def pct(x: Any, signed: bool = False) -> str:
    """A rate as a percentage with one decimal (``12.5%``, signed ``+12.5%``); ``-`` for None."""
    if x is None:
        return "-"
    return f"{100 * x:+.1f}%" if signed else f"{100 * x:.1f}%"


def num(x: Any, signed: bool = False, digits: int = 4) -> str:
    """A number with `digits` significant digits; ints as they are, booleans as yes / no, ``-``
    for None."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:+d}" if signed else str(x)
    return f"{x:+.{digits}g}" if signed else f"{x:.{digits}g}"


def pvalue(x: Any) -> str:
    """A p- or q-value: four decimals, ``<1e-4`` below that, ``-`` for None."""
    if x is None:
        return "-"
    return "<1e-4" if x < 1e-4 else f"{x:.4f}"


def bits(b: Any) -> str:
    """A bit width: ``4``, ``4.25``; ``?`` when not recorded."""
    if b is None:
        return "?"
    return str(int(b)) if float(b).is_integer() else f"{b:g}"


def quant_text(q: Any) -> str:
    """One-line description of a run's quantization record."""
    if q is None or q == {}:
        return "quantization not recorded"
    if isinstance(q, dict):
        method = q.get("method")
        if method is None:
            return ", ".join(f"{k}={v}" for k, v in q.items())
        if str(method).lower() == "none":
            return "not quantized"
        return " ".join([str(method)] + [f"{k}={q[k]}" for k in QUANT_KEYS if k in q])
    return str(q)
