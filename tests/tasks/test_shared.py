"""Pieces every task shares: the record-count aggregation and the option permutation."""

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.tasks._options import (
    mark_permuted,
    option_permutation,
    parse_permute_seed,
    shown_order,
)
from lm_eval_bias.tasks._records import count_records


def test_count_records():
    assert count_records([{"v": 1}] * 7) == 7
    assert count_records([]) == 0


def test_option_permutation_is_seeded_per_item():
    a = option_permutation(1, "bbq", "Age:3", 3)
    assert sorted(a) == [0, 1, 2]
    assert a == option_permutation(1, "bbq", "Age:3", 3)
    # different items (or seeds) get independent orders: over 50 items not all equal
    orders = {tuple(option_permutation(1, "bbq", f"Age:{i}", 3)) for i in range(50)}
    assert len(orders) > 1


def test_shown_order_and_its_record():
    assert shown_order(None, "bbq", "Age:3", 3) == [0, 1, 2]
    assert shown_order(1, "bbq", "Age:3", 3) == option_permutation(1, "bbq", "Age:3", 3)
    assert mark_permuted({"a": 1}, None, [1, 0]) == {"a": 1}
    doc = mark_permuted({"a": 1}, 4, [1, 0])
    assert list(doc.items()) == [("a", 1), ("perm", [1, 0]), ("permute_seed", 4)]
    assert list(mark_permuted({"a": 1}, 4).items()) == [("a", 1), ("permute_seed", 4)]


@pytest.mark.parametrize("value,expected", [(None, None), ("", None), ("3", 3), (7, 7), (" 2 ", 2)])
def test_parse_permute_seed(value, expected):
    assert parse_permute_seed(value) == expected


@pytest.mark.parametrize("value", ["x", True, "1.5"])
def test_parse_permute_seed_rejects(value):
    with pytest.raises(BiasEvalError, match="permute_seed must be an integer"):
        parse_permute_seed(value)
