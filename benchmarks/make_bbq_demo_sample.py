"""Make the BBQ demo sample shipped in lm_eval_bias/data/demo/bbq/ from the full upstream files.

    python benchmarks/make_bbq_demo_sample.py --source /path/to/bbq --out lm_eval_bias/data/demo/bbq

`--source` is a folder in upstream's layout (data/<Category>.jsonl,
supplemental/additional_metadata.csv, LICENSE), e.g. `$LM_EVAL_BIAS_DATA_DIR/bbq`.

Selection, deterministic (no randomness): BBQ's files list every template instance as four
consecutive lines with the same question_index and answers, one per cell (ambig, disambig) x
(neg, nonneg). Per category we take 4 distinct question_index values, evenly spaced over the
category's sorted question indices (positions round(k * (n - 1) / 3), k = 0..3), and for each the
first complete group of four lines. That gives 16 items per category, 4 per cell, as complete
template sets. JSON lines and metadata CSV records (all records of the chosen items, repeats
included, in file order, with the header) are copied byte for byte.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from pathlib import Path

CATEGORIES = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
PER_CATEGORY_TEMPLATES = 4
CELLS = {("ambig", "neg"), ("ambig", "nonneg"), ("disambig", "neg"), ("disambig", "nonneg")}


def _complete_group(rows: list[dict]) -> bool:
    return (
        len(rows) == 4
        and len({r["question_index"] for r in rows}) == 1
        and len({json.dumps(r["answer_info"], sort_keys=True) for r in rows}) == 1
        and {(r["context_condition"], r["question_polarity"]) for r in rows} == CELLS
    )


def select_lines(lines: list[str]) -> list[int]:
    """Indices of the chosen lines of one category file (see the module docstring)."""
    rows = [json.loads(line) for line in lines]
    groups: dict[str, list[int]] = {}
    for start in range(0, len(rows) - 3, 4):
        block = rows[start : start + 4]
        if _complete_group(block):
            groups.setdefault(block[0]["question_index"], list(range(start, start + 4)))
    indices = sorted(groups, key=int)
    n = len(indices)
    if n < PER_CATEGORY_TEMPLATES:
        raise SystemExit(f"only {n} complete template groups, need {PER_CATEGORY_TEMPLATES}")
    chosen = [
        indices[round(k * (n - 1) / (PER_CATEGORY_TEMPLATES - 1))]
        for k in range(PER_CATEGORY_TEMPLATES)
    ]
    return [i for q in chosen for i in groups[q]]


def raw_csv_records(text: str):
    """(parsed row, exact source text) for every record of a CSV text, header first."""
    pending: list[str] = []

    def lines():
        for line in io.StringIO(text, newline=""):
            pending.append(line)
            yield line

    for row in csv.reader(lines()):
        raw = "".join(pending)
        pending.clear()
        yield row, raw


def make_sample(source: Path, out: Path) -> dict[str, int]:
    keep: set[tuple[str, int]] = set()
    counts = {}
    (out / "data").mkdir(parents=True, exist_ok=True)
    for category in CATEGORIES:
        with open(source / "data" / f"{category}.jsonl", encoding="utf-8", newline="") as fh:
            lines = fh.readlines()
        chosen = select_lines(lines)
        with open(out / "data" / f"{category}.jsonl", "w", encoding="utf-8", newline="") as fh:
            fh.writelines(lines[i] for i in chosen)
        keep |= {(category, json.loads(lines[i])["example_id"]) for i in chosen}
        counts[category] = len(chosen)

    meta_text = (source / "supplemental" / "additional_metadata.csv").read_text(encoding="utf-8")
    records = raw_csv_records(meta_text)
    header, header_raw = next(records)
    cat_col, id_col = header.index("category"), header.index("example_id")
    kept = [header_raw]
    for row, raw in records:
        if (row[cat_col], int(row[id_col])) in keep:
            kept.append(raw)
    (out / "supplemental").mkdir(parents=True, exist_ok=True)
    with open(
        out / "supplemental" / "additional_metadata.csv", "w", encoding="utf-8", newline=""
    ) as fh:
        fh.write("".join(kept))
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    counts["metadata_records"] = len(kept) - 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="folder in upstream BBQ layout")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "lm_eval_bias" / "data" / "demo" / "bbq",
    )
    args = parser.parse_args(argv)
    for key, value in make_sample(args.source, args.out).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
