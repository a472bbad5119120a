"""The `bias_item` field table (`lm_eval_bias.record_schema`) is the one definition: the docs
print it, the builder writes exactly its core fields, the reader's columns and the pairing come
from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lm_eval_bias.analysis.pairing import PAIRED_DOC_COLUMNS, PAIRED_VALUE_COLUMNS
from lm_eval_bias.analysis.runs import ITEM_COLUMNS
from lm_eval_bias.record_schema import (
    CORE_FIELDS,
    CORE_KEYS,
    DERIVED_COLUMNS,
    EXTRA_FIELDS,
    SAMPLE_COLUMNS,
    RecordField,
    markdown_tables,
)
from lm_eval_bias.tasks._records import make_bias_item

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _doc_table(marker: str) -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {marker}: [^\n]*-->\n((?:\|[^\n]*\n)+)", text)
    assert m, f"docs/architecture.md has no table after <!-- {marker} -->"
    return m.group(1).rstrip("\n")


def test_the_docs_print_the_code_s_field_tables():
    core, extra = markdown_tables()
    assert _doc_table("record-core-fields") == core
    assert _doc_table("record-extra-fields") == extra


def test_make_bias_item_writes_exactly_the_core_fields_and_refuses_them_as_extras():
    rec = make_bias_item(benchmark="bbq", choices=["a", "b"], pred=0, gold=1, biased=True,
                         groups=["g"], axis="Age", loglikelihoods=[-1.0, -2.0],
                         context_condition="ambig")
    assert tuple(rec)[:len(CORE_KEYS)] == CORE_KEYS
    assert tuple(rec)[len(CORE_KEYS):] == ("context_condition",)
    with pytest.raises(ValueError, match="collides with a core key"):
        make_bias_item(benchmark="bbq", choices=["a", "b"], pred=0, gold=1, biased=True,
                       groups=["g"], axis="Age", axis_x=1, probs=[0.5, 0.5])


def test_the_item_table_has_every_read_field_once():
    read = [f.name for f in CORE_FIELDS + EXTRA_FIELDS if f.reader]
    assert ITEM_COLUMNS == SAMPLE_COLUMNS + tuple(
        n for n in read if n in CORE_KEYS) + DERIVED_COLUMNS + tuple(
        n for n in read if n not in CORE_KEYS)
    assert len(set(ITEM_COLUMNS)) == len(ITEM_COLUMNS)


def test_the_pairing_takes_its_columns_from_the_table():
    for f in CORE_FIELDS + EXTRA_FIELDS:
        assert (f.name in PAIRED_VALUE_COLUMNS) == (f.pairing == "value"), f.name
        assert (f.name in PAIRED_DOC_COLUMNS) == (f.pairing == "doc"), f.name
    assert set(PAIRED_VALUE_COLUMNS) | set(PAIRED_DOC_COLUMNS) <= set(ITEM_COLUMNS)


def test_extras_do_not_shadow_core_fields_and_kinds_are_checked():
    assert not {f.name for f in EXTRA_FIELDS} & set(CORE_KEYS)
    with pytest.raises(ValueError, match="reader kind"):
        RecordField("x", "int", "m", "all", reader="float")


@pytest.mark.parametrize(("key", "value"), [("biased_choice", "0"), ("biased_choice", True),
                                            ("unknown_chosen", 1), ("context_condition", 0)])
def test_make_bias_item_checks_declared_extras_by_their_reader_kind(key, value):
    with pytest.raises(TypeError, match=key):
        make_bias_item(benchmark="bbq", choices=["a", "b"], pred=0, gold=1, biased=True,
                       groups=["g"], axis="Age", **{key: value})
    rec = make_bias_item(benchmark="bbq", choices=["a", "b"], pred=0, gold=1, biased=True,
                         groups=["g"], axis="Age", **{key: None})
    assert rec[key] is None
