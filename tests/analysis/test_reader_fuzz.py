"""Fuzzing the samples reader (`analysis.runs.read_run`) with damaged samples files.

The starting point is a samples file in lm-eval 0.4.13's own format (conftest.write_run: the keys
lm-eval writes, ensure_ascii=False, bare NaN where a float is NaN) with `bias_item` records,
non-ASCII group names (so that a cut can split a multi-byte character) and one NaN value (`gold`).
Hypothesis then damages it the ways a crashed or tampered run does: cut at a random byte, flip
bytes, insert bytes that are not UTF-8, insert or substitute a bare NaN, duplicate lines, cut a
line in the middle (the next one is appended to it, as after a crash and a rerun into the same
folder).

What must hold, whatever the damage:
- the reader returns a Run or raises BiasEvalError with a one-line message; nothing else;
- when it refuses because of a line, the line it names is a damaged one (not an intact line);
- when it reads, no line is lost or invented: one record per non-blank line, every intact line's
  record equals the undamaged reading, and with damage that always breaks a line (second test)
  the number of records equals the number of intact lines.

Deterministic in CI: derandomize=True and no example database.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm_eval_bias.analysis.runs import read_run
from lm_eval_bias.errors import BiasEvalError

from .conftest import HIGH, LOW, MED, write_run

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_GROUPS = [["Muslim"], ["Jewish", "Muslim"], ["Roma 🧑‍🦱"], ["女性"], ["men"], []]
ITEMS = [
    {"task": "bias_a", "doc_id": d, "groups": _GROUPS[d % len(_GROUPS)],
     "axis": "Religion" if d % 2 else "Gender_identity", "pred": [0, 1, 2, None][d % 4],
     "biased": [True, False, None][d % 3], "probs": [LOW, MED, HIGH, None][d % 4]}
    for d in range(10)
]
# lm-eval writes a bare NaN (a NaN probability is refused, so the NaN sits in a nullable field)
ITEMS[5] = dict(ITEMS[5], bias_item_extra={"gold": float("nan")})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """(run folder, samples file, original lines as bytes, item table of the undamaged file)."""
    files = write_run(tmp_path_factory.mktemp("fuzz") / "run", ITEMS)
    path = files.samples["bias_a"]
    data = path.read_bytes()
    assert b"NaN" in data and "🧑".encode() in data  # the damage has real material to hit
    lines = data.splitlines(keepends=True)
    assert len(lines) == len(ITEMS)
    table = read_run(files.out).items.set_index("doc_id")
    return files.out, path, lines, table


# ---------------------------------------------------------------------------- damage

_NOT_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3(", b"\xed\xa0\x80", b"\xf0\x9f"]
# never part of any UTF-8 text, wherever inserted and whatever else is inserted next to them
# (two of the bytes above can pair up into a valid character, e.g. b"\xc3" + b"\x80")
_NEVER_UTF8 = [b"\xff", b"\xfe"]
_NUMBER = re.compile(rb"(?<=: )-?\d+(?:\.\d+)?(?:e-?\d+)?")


@st.composite
def _damage(draw, n_lines: int, breaking_only: bool):
    """A list of (operation, line index, parameters)."""
    kinds = ["never_utf8", "cut_line", "dup"] if breaking_only else [
        "flip", "not_utf8", "nan_insert", "nan_value", "dup", "cut_line"]
    ops = draw(st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, n_lines - 1),
                                  st.integers(0, 10 ** 6), st.integers(1, 255)),
                        max_size=4))
    truncate = draw(st.one_of(st.none(), st.integers(0, 10 ** 6)))
    return ops, truncate


def _apply(lines: list[bytes], ops, truncate):
    """The damaged file as (bytes, physical lines with their origin): origin is the index of the
    original line when the physical line is byte-identical to it, else None."""
    work = [[ln, i] for i, ln in enumerate(lines)]   # [bytes, origin or None]
    for kind, idx, pos, byte in ops:
        idx %= len(work)
        line, _ = work[idx]
        body = line[:-1] if line.endswith(b"\n") else line
        p = pos % (len(body) + 1)
        if kind == "flip" and body:
            p = pos % len(body)
            body = body[:p] + bytes([body[p] ^ byte]) + body[p + 1:]
        elif kind == "not_utf8":
            body = body[:p] + _NOT_UTF8[byte % len(_NOT_UTF8)] + body[p:]
        elif kind == "never_utf8":
            body = body[:p] + _NEVER_UTF8[byte % len(_NEVER_UTF8)] + body[p:]
        elif kind == "nan_insert":
            body = body[:p] + b"NaN" + body[p:]
        elif kind == "nan_value":
            numbers = list(_NUMBER.finditer(body))
            if numbers:
                m = numbers[pos % len(numbers)]
                body = body[:m.start()] + b"NaN" + body[m.end():]
        elif kind == "dup":
            work.insert(pos % (len(work) + 1), [line, work[idx][1]])
            continue
        elif kind == "cut_line":
            # crashed mid-line: the rest of the line and its newline are lost, the next line
            # (rerun appended to the same file) continues on the same physical line
            p = pos % max(len(body), 1)   # at least the closing brace is lost
            body = body[:p]
            work[idx] = [body, None]
            continue
        work[idx] = [body + b"\n" if line.endswith(b"\n") else body, None]
    data = b"".join(ln for ln, _ in work)
    if truncate is not None:
        data = data[:truncate % (len(data) + 1)]
    # physical lines of the result, and where each came from (identity = byte equality)
    physical = []
    seen = set()
    for ln in data.splitlines(keepends=True):
        origin = next((i for i, orig in enumerate(lines) if ln == orig), None)
        if origin is None and ln.endswith(b"}") and ln + b"\n" in lines:
            origin = lines.index(ln + b"\n")   # the last line, complete but for its newline
        if origin is not None and origin in seen:
            origin = None   # a repeated line is the damage, not the first one
        if origin is not None:
            seen.add(origin)
        physical.append((ln, origin))
    return data, physical


def _read(folder: Path, path: Path, data: bytes):
    path.write_bytes(data)
    try:
        return read_run(folder), None
    except BiasEvalError as exc:
        return None, str(exc)


def _named_lines(msg: str, path: Path) -> set[int]:
    named = {int(n) for n in re.findall(re.escape(str(path)) + r":(\d+)", msg)}
    named |= {int(n) for n in re.findall(r"\bline (\d+)", msg)}
    return named


def _check_refusal(msg: str, path: Path, physical) -> None:
    assert "\n" not in msg, msg
    named = _named_lines(msg, path)
    if named:
        # a line-level refusal names at least one damaged line (the reader stops at the first
        # problem, which may be reported from the intact line that revealed it)
        damaged = {k for k, (ln, origin) in enumerate(physical, 1)
                   if origin is None and ln.strip()}
        assert named & damaged, (msg, sorted(damaged))
    else:
        # a file-level refusal: the file was cut short (at a line boundary or to nothing)
        assert str(path) in msg or "empty" in msg, msg


def _check_reading(run, physical, table) -> None:
    nonblank = [(ln, origin) for ln, origin in physical if ln.strip()]
    items = run.items
    assert len(items) == len(nonblank)   # nothing dropped, nothing invented
    by_doc = items.set_index("doc_id")
    assert by_doc.index.is_unique
    for _, origin in nonblank:
        if origin is None:
            continue
        doc_id = ITEMS[origin]["doc_id"]
        got, want = by_doc.loc[doc_id], table.loc[doc_id]
        for col in ("pred", "biased", "groups", "axis", "doc_hash", "invalid"):
            assert repr(got[col]) == repr(want[col]), (doc_id, col)


# ---------------------------------------------------------------------------- the properties


@FUZZ
@given(data=st.data())
def test_any_damage_is_read_faithfully_or_refused_in_one_line(pristine, data):
    folder, path, lines, table = pristine
    ops, truncate = data.draw(_damage(len(lines), breaking_only=False))
    damaged, physical = _apply(lines, ops, truncate)
    try:
        run, msg = _read(folder, path, damaged)
    finally:
        path.write_bytes(b"".join(lines))
    if run is None:
        _check_refusal(msg, path, physical)
    else:
        _check_reading(run, physical, table)


@FUZZ
@given(data=st.data())
def test_breaking_damage_names_the_first_damaged_line(pristine, data):
    """Damage that always breaks a line (bytes that are not UTF-8, a line cut mid-way, a
    duplicated line) or cuts the file: the reader refuses and names the first damaged line, or,
    when nothing but whole lines were cut off the end, reads exactly the intact lines...
    except that lm-eval's own count in the results file tells a short file apart."""
    folder, path, lines, table = pristine
    ops, truncate = data.draw(_damage(len(lines), breaking_only=True))
    damaged, physical = _apply(lines, ops, truncate)
    try:
        run, msg = _read(folder, path, damaged)
    finally:
        path.write_bytes(b"".join(lines))
    nonblank = [(k, ln, origin) for k, (ln, origin) in enumerate(physical, 1) if ln.strip()]
    bad = [k for k, _, origin in nonblank if origin is None]
    n_intact = sum(origin is not None for _, _, origin in nonblank)
    if run is not None:
        assert not bad
        assert len(run.items) == n_intact == len(lines)   # a shorter file is never accepted
        _check_reading(run, physical, table)
        return
    assert "\n" not in msg, msg
    if bad:
        assert f"{path}:{bad[0]}:" in msg, (msg, bad)   # the first damaged line, exactly
    else:
        # only whole lines lost (cut at a line boundary): lm-eval's count tells
        assert n_intact < len(lines), msg
        assert "cut short" in msg or "is empty" in msg, msg


def test_the_fuzzed_file_is_restored(pristine):
    # the properties above rewrite the file; each example restores it (checked here, so that a
    # leak between examples would show)
    folder, path, lines, table = pristine
    assert path.read_bytes() == b"".join(lines)
    assert len(read_run(folder).items) == len(lines) == len(table)


def test_examples_reach_every_kind_of_damage(pristine):
    # guard against a strategy that silently stopped damaging: each kind changes the file
    _, _, lines, _ = pristine
    original = b"".join(lines)
    for kind in ("flip", "not_utf8", "never_utf8", "nan_insert", "nan_value", "cut_line"):
        damaged, physical = _apply(lines, [(kind, 3, 40, 7)], None)
        assert damaged != original, kind
        assert physical[3][1] is None, kind
    damaged, physical = _apply(lines, [("dup", 2, 5, 1)], None)
    assert damaged.count(lines[2]) == 2 and [o for _, o in physical].count(None) == 1
    damaged, _ = _apply(lines, [], 10)
    assert damaged == original[:10]
