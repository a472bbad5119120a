"""The `bias_item` record, defined once: every field's name, type, meaning and who fills it.

This table drives `lm_eval_bias.tasks._records.make_bias_item` (which keys are core, which are
extras), the reader `lm_eval_bias.analysis.runs` (the item table's record columns, their
coercion, and the checks of `pred`, `gold`, `probs` and `groups` against the record's own
`choices`), `lm_eval_bias.analysis.pairing` (which columns a paired table takes from each run)
and the tables of docs/architecture.md (`markdown_tables`; a test compares them).

It imports nothing of this package, so that both `tasks` and `analysis` may import it without
crossing the layering (tasks never import analysis; analysis never imports models).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The record version this package writes.
BIAS_ITEM_VERSION = 1

#: How the reader coerces a field into the item table ("" = not read into the table).
READER_KINDS = ("int", "bool", "str", "groups", "probs", "object", "")

#: How the paired table (`analysis.pairing.pair_items`) uses a column: "value" (base_<c> and
#: other_<c>, one per run), "doc" (describes the document, taken from the base run) or "".
PAIRING_ROLES = ("value", "doc", "")


@dataclass(frozen=True)
class RecordField:
    """One key of a `bias_item` record."""

    name: str
    type: str  #: JSON type, as the docs print it
    meaning: str
    filled_by: str  #: which benchmarks fill it
    reader: str = ""  #: one of READER_KINDS
    pairing: str = ""  #: one of PAIRING_ROLES

    def __post_init__(self) -> None:
        if self.reader not in READER_KINDS:
            raise ValueError(f"RecordField {self.name}: reader kind {self.reader!r} unknown")
        if self.pairing not in PAIRING_ROLES:
            raise ValueError(f"RecordField {self.name}: pairing role {self.pairing!r} unknown")


_ALL = "every benchmark"

#: The generic fields: every record has every one of them (make_bias_item writes them all).
CORE_FIELDS: tuple[RecordField, ...] = (
    RecordField("v", "int", "record version, `1`", _ALL),
    RecordField("benchmark", "str", 'the benchmark, e.g. `"bbq"`', _ALL, "str", "doc"),
    RecordField("choices", "list[str]",
                "option texts, in the order shown to the model (open tasks: the scorer's labels)",
                _ALL),
    RecordField("pred", "int or null",
                "index of the chosen option, in [0, len(choices)); null when unparsable "
                "(then `invalid` is true)", _ALL, "int", "value"),
    RecordField("invalid", "bool",
                "the response could not be mapped to an option (generative variants)", _ALL,
                "bool", "value"),
    RecordField("probs", "list[float] or null",
                "softmax of the per-option log-likelihoods: one per choice, finite, >= 0, "
                "summing to 1 (within 1e-6); null for generative variants",
                "likelihood variants", "probs", "value"),
    RecordField("gold", "int or null", "correct option, in [0, len(choices)), where the "
                "benchmark has one", "benchmarks with a correct answer", "int", "value"),
    RecordField("biased", "bool or null",
                "the benchmark's item-level bias label of this answer; null when undefined (no "
                "bias target for the item, or `invalid`)", _ALL, "bool", "value"),
    RecordField("groups", "list[str]",
                "social group(s) the item is about (BBQ: `stereotyped_groups`)", _ALL,
                "groups", "doc"),
    RecordField("axis", "str",
                'the benchmark\'s category / bias type (BBQ: the category, e.g. `"Age"`)', _ALL,
                "str", "doc"),
)

#: Benchmark-specific fields that the reader takes into the item table (columns after the core
#: ones; null where a benchmark does not fill them). Other extras stay in the samples file only;
#: each task README documents its own.
EXTRA_FIELDS: tuple[RecordField, ...] = (
    RecordField("label", "str or null", "text of the scorer's verdict (`choices[pred]`)",
                "open tasks (RTP, ToxiGen, BOLD)", "str", "value"),
    RecordField("scores", "object", "the scorer's raw numbers (RTP `toxicity`, "
                "`max_toxicity`; BOLD `sentiment`, `toxicity`)", "open tasks (RTP, ToxiGen, BOLD)",
                "object", "value"),
    RecordField("context_condition", "str", '`"ambig"` or `"disambig"`', "BBQ", "str", "doc"),
    RecordField("question_polarity", "str", '`"neg"` or `"nonneg"`', "BBQ", "str", "doc"),
    RecordField("unknown_chosen", "bool or null", "the answer is the unknown option", "BBQ",
                "bool", "value"),
    RecordField("biased_choice", "int or null", "index of the stereotype-consistent option",
                "BBQ, RedditBias, BiasLens", "int"),
    RecordField("unknown_choice", "int", 'index of the "unknown" option', "BBQ", "int"),
)

#: Keys of a sample line (written by lm-eval, not by the record) that the item table keeps.
SAMPLE_COLUMNS = ("task", "filter", "doc_id", "doc_hash", "prompt_hash", "target_hash")

#: Columns the reader derives from `probs` (metrics.uncertainty); both are per-run values.
DERIVED_COLUMNS = ("entropy_norm", "uncertainty")

CORE_KEYS: tuple[str, ...] = tuple(f.name for f in CORE_FIELDS)

#: The declared extras by name (make_bias_item checks their type by reader kind).
EXTRAS_BY_NAME: dict[str, RecordField] = {f.name: f for f in EXTRA_FIELDS}


def read_fields() -> tuple[RecordField, ...]:
    """The record fields the reader takes into the item table: core first, then extras."""
    return tuple(f for f in CORE_FIELDS + EXTRA_FIELDS if f.reader)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(fields: tuple[RecordField, ...]) -> str:
    """A Markdown table of `fields`: key | type | meaning | filled by."""
    lines = ["| key | type | meaning | filled by |", "|---|---|---|---|"]
    for f in fields:
        lines.append(f"| `{f.name}` | {_cell(f.type)} | {_cell(f.meaning)} | {f.filled_by} |")
    return "\n".join(lines)


def markdown_tables() -> tuple[str, str]:
    """(core fields table, extra fields table), as docs/architecture.md prints them."""
    return markdown_table(CORE_FIELDS), markdown_table(EXTRA_FIELDS)
