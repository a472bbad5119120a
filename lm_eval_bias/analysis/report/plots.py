"""The report's plots as PNG (matplotlib, Agg backend): flip rate by uncertainty bin; net change per
group (ranked bars); emergence rate by bit width per task. PNGs are written without timestamps, so
the same report gives the same bytes."""

from __future__ import annotations

import io

from lm_eval_bias.analysis.report.settings import require

PLOTS = ("uncertainty_flip_rate", "group_net_change", "emergence_by_bits")
_MAX_GROUP_BARS = 30


def condition_names(report: dict) -> dict[str, str]:
    return {c["id"]: f"{c['id']}: {c['label']}" for c in report["conditions"]}


def _figure_bytes(fig) -> bytes:
    buf = io.BytesIO()
    # no timestamp / software chunks: the same report gives the same bytes
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def render_plots(report: dict) -> dict[str, bytes]:
    """The three plots as PNG bytes, keyed by `PLOTS` names (a plot with no data is left out)."""
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = condition_names(report)
    out: dict[str, bytes] = {}
    cmps = report["comparisons"]
    with plt.rc_context({"font.size": 9, "svg.hashsalt": "lm-eval-bias"}):
        # 1. flip rate by uncertainty bin
        fig, ax = plt.subplots(figsize=(7, 4))
        bins = ["low", "medium", "high"]
        width = 0.8 / max(len(cmps), 1)
        for k, cmp in enumerate(cmps):
            rates = {b["bin"]: b["response_flip_rate"] for b in cmp["uncertainty"]["bins"]}
            ax.bar([i + k * width for i in range(3)],
                   [100 * (rates.get(b) or 0.0) for b in bins], width,
                   label=names[cmp["condition"]][:60])
        ax.set_xticks([i + width * (len(cmps) - 1) / 2 for i in range(3)], bins)
        ax.set_xlabel("uncertainty of the reference answer (normalized entropy bin)")
        ax.set_ylabel("response flip rate (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out["uncertainty_flip_rate"] = _figure_bytes(fig)
        plt.close(fig)
        # 2. net change per group, ranked (the comparison with the fewest bits)
        if cmps:
            cmp = min(cmps, key=lambda c: (c["bits"] if c["bits"] is not None else 1e9,
                                           c["condition"]))
            # diverging bars: most worsened on top, most improved at the bottom
            groups = sorted((g for g in cmp["groups"] if g["net_change"] is not None),
                            key=lambda g: (-g["net_change"], g["task"], g["group"]))
            if len(groups) > _MAX_GROUP_BARS:
                half = _MAX_GROUP_BARS // 2
                groups = groups[:half] + groups[-half:]
            if groups:
                fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * len(groups) + 1)))
                labels = [f"{g['group']} ({g['task']})"[:50] for g in groups][::-1]
                vals = [100 * g["net_change"] for g in groups][::-1]
                ax.barh(range(len(vals)), vals,
                        color=["#c0392b" if v > 0 else "#2471a3" for v in vals])
                ax.set_yticks(range(len(vals)), labels)
                ax.axvline(0, color="black", linewidth=0.8)
                ax.set_xlabel(f"net change (%), {names[cmp['condition']][:60]} vs reference")
                fig.tight_layout()
                out["group_net_change"] = _figure_bytes(fig)
                plt.close(fig)
        # 3. emergence by bit width per task
        em = [e for e in report["dose_response"]["emergence"]
              if e["bits"] is not None and e["rate"] is not None]
        if em:
            fig, ax = plt.subplots(figsize=(7, 4))
            by_task: dict[str, list] = {}
            for e in em:
                by_task.setdefault(f"{e['task']}", []).append((e["bits"], 100 * e["rate"]))
            for task, pts in sorted(by_task.items())[:20]:
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=task[:40])
            ax.invert_xaxis()
            ax.set_xlabel("bit width")
            ax.set_ylabel("bias emergence (% of reference-unbiased items)")
            ax.legend(fontsize=7)
            fig.tight_layout()
            out["emergence_by_bits"] = _figure_bytes(fig)
            plt.close(fig)
    return out
