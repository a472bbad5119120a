"""The report's ``summary`` section: one line of headline figures per compared condition."""

from __future__ import annotations


def _row(cmp: dict, quality: dict) -> dict:
    flips = cmp["flips"]
    asym = cmp["group_asymmetry"]
    return {
        "condition": cmp["condition"], "label": cmp["label"], "bits": cmp["bits"],
        "n_paired": cmp["n_paired"],
        "response_flip_rate": flips["response_flip_rate"],
        "u2b_rate_of_unbiased": flips["u2b_rate_of_unbiased"],
        "b2u_rate_of_biased": flips["b2u_rate_of_biased"],
        "net_change": flips["net_change"],
        "mcnemar_pvalue": cmp["mcnemar"]["pvalue"],
        "masked_share_groups": cmp["masked_flipping"]["groups"]["response_flips"][
            "masked_share"],
        "high_low_ratio": cmp["uncertainty"]["high_low_ratio"],
        "largest_worsening": (asym["largest_worsening"] or {}).get("group"),
        "largest_improvement": (asym["largest_improvement"] or {}).get("group"),
        "n_seeds": cmp["seeds"]["n"],
        "quality": {f"{r['task']}/{r['metric']}": r["relative_change"].get(cmp["condition"])
                    for r in quality["rows"]} or None,
    }


def summary_section(reference_id: str, comparisons: list[dict], quality: dict) -> dict:
    """``summary``, from the ``comparisons`` and ``quality`` sections."""
    return {"reference": reference_id,
            "conditions": [_row(cmp, quality) for cmp in comparisons]}
