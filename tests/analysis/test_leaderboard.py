"""`leaderboard`: which submissions are listed, unverified or skipped, escaping of every string,
and the page itself in a real headless Chromium (Debian's `chromium`, driven by playwright's
driver, which needs no browser download): sort, filter, detail view, no console errors, and a
screenshot kept as an artifact.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import run_cli

from lm_eval_bias.analysis.leaderboard import build_leaderboard, model_family

from .test_submission import real_runs

pytest.importorskip("jsonschema", reason="pip install 'lm-eval-bias[leaderboard]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "evil/<img src=x onerror=\"window.__pwned=1\">-7B</script><b>"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_llama_dir):
    """Four entries: a verified 4-bit submission with its reference, a verified full-precision one
    without, an unverified one (no runs; a hostile model name, AWQ 3-bit) and a tampered one."""
    ref, w4 = real_runs(tmp_path_factory, tiny_llama_dir)
    root = tmp_path_factory.mktemp("leaderboard")
    subs = root / "submissions"
    (subs / "tiny-w4").mkdir(parents=True)
    shutil.copytree(w4, subs / "tiny-w4" / "run")
    shutil.copytree(ref, subs / "tiny-w4" / "reference")
    assert run_cli(["lm-eval-bias", "export", str(w4), "--reference", str(ref), "--output",
                    str(subs / "tiny-w4" / "submission.json")]).returncode == 0
    (subs / "tiny-fp").mkdir()
    shutil.copytree(ref, subs / "tiny-fp" / "run")
    assert run_cli(["lm-eval-bias", "export", str(ref), "--output",
                    str(subs / "tiny-fp" / "submission.json")]).returncode == 0
    doc = json.loads((subs / "tiny-w4" / "submission.json").read_text())
    evil = json.loads(json.dumps(doc))
    evil["model"]["name"] = EVIL
    evil["quantization"] = {"method": "awq", "bits": 3, "note": "<script>alert(1)</script>"}
    evil["headline"]["bbq"]["biased_rate"] = 0.99
    evil["tasks"]["bias_bbq_age"]["items"]["none"]["per_group"]["<i>grp</i>"] = \
        evil["tasks"]["bias_bbq_age"]["items"]["none"]["per_group"]["old"]
    (subs / "evil.json").write_text(json.dumps(evil))
    (subs / "tampered").mkdir()
    shutil.copytree(w4, subs / "tampered" / "run")
    shutil.copytree(ref, subs / "tampered" / "reference")
    doc["headline"]["bbq"]["biased_rate"] = 0.0
    (subs / "tampered" / "submission.json").write_text(json.dumps(doc))
    out = root / "site"
    proc = run_cli(["lm-eval-bias", "leaderboard", str(subs), "--output", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout, doc


def test_family():
    assert model_family("HuggingFaceTB/SmolLM2-135M-Instruct") == "SmolLM2"
    assert model_family("meta-llama/Llama-3.1-8B") == "Llama"
    assert model_family("/tmp/x/tiny") == "tiny"
    assert model_family(None) == "unknown"


def test_cli_says_what_is_listed(site):
    _, stdout, _ = site
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("unverified evil: no run folders")
    assert lines[1].startswith("skipped    tampered: failed verification: headline.bbq."
                               "biased_rate (recomputed from the run): expected 0.0, found ")
    assert lines[2].startswith("verified   tiny-fp: ")
    assert lines[3].startswith("verified   tiny-w4: ")
    assert lines[4].endswith("3 listed, 1 unverified, 1 skipped")


def test_page_is_self_contained_and_escaped(site):
    out, _, _ = site
    page = (out / "index.html").read_text()
    for needle in ("http://", "https://", "<link", "src=\"", "@import", "url("):
        # the CSP meta names no origin; nothing is fetched
        assert needle not in page.replace("https://json-schema.org", ""), needle
    assert "<img" not in page and "<i>grp" not in page and "alert(1)</script>" not in page
    assert page.count("</script>") == 2  # the data block and the code, nothing from the data
    assert "tampered" in page and "failed verification" in page  # named below the table


def test_empty_or_missing_folder_is_a_user_error(tmp_path):
    from lm_eval_bias.errors import BiasEvalError

    with pytest.raises(BiasEvalError, match="submissions folder not found"):
        build_leaderboard(tmp_path / "nope", tmp_path / "site")
    with pytest.raises(BiasEvalError, match="no submissions in"):
        build_leaderboard(tmp_path, tmp_path / "site")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_in_headless_chromium(site, tmp_path):
    try:  # chromium is here, so a missing driver is a broken test environment, not a skip
        from playwright import sync_api
    except ImportError:
        pytest.fail("chromium is installed but playwright is not: pip install -e '.[dev]' (only "
                    "playwright's driver is used; it downloads no browser)")
    out, _, doc = site
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((out / "index.html").as_uri())
            page.wait_for_function("window.__leaderboard !== undefined")

            def shown(col="model"):
                return page.eval_on_selector_all(
                    f"#rows tr td[data-key='{col}']", "tds => tds.map(t => t.textContent)")

            assert sorted(shown()) == sorted([EVIL, doc["model"]["name"], doc["model"]["name"]])
            assert page.evaluate("window.__pwned") is None  # the hostile name stayed text
            # sort by the BBQ biased column, twice (ascending, then descending)
            head = page.locator("th[data-key='bias:bbq']")
            head.click()
            asc = shown("bias:bbq")
            head.click()
            desc = shown("bias:bbq")
            assert desc[0] == "99.0%" and asc[-1] == "99.0%" and asc == desc[::-1]
            # sort by method (text)
            page.locator("th[data-key='method']").click()
            assert shown("method") == ["awq", "none", "rtn"]
            # filter: method rtn, then bits 3, then family
            page.select_option("#f-method", "rtn")
            assert shown("method") == ["rtn"] and shown("bits") == ["4"]
            page.select_option("#f-method", "")
            page.select_option("#f-bits", "3")
            assert shown("model") == [EVIL]
            page.select_option("#f-bits", "")
            page.select_option("#f-family", model_family(doc["model"]["name"]))
            assert sorted(shown("method")) == ["none", "rtn"]
            assert page.text_content("#count") == "2 of 3 shown"
            page.select_option("#f-family", "")
            # detail view of the 4-bit run: per-task scores and per-group figures
            page.locator("#rows tr", has=page.locator("td[data-key='method']",
                                                      has_text="rtn")).locator("button").click()
            detail = page.locator("#detail")
            assert detail.is_visible()
            text = detail.text_content()
            for task in ("bias_bbq_age", "bias_crows_pairs_age", "bias_amb,none",
                         "pct_stereotype,none", "net change"):
                assert task in text, task
            assert page.eval_on_selector("#detail", "d => d.dataset.id") == "tiny-w4"
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                pass
            else:  # the report's plots of the 4-bit run against its reference
                assert page.locator("#detail img.plot").count() >= 2
                assert page.eval_on_selector_all(
                    "#detail img.plot", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")
            group_cells = page.eval_on_selector_all(
                "#detail td.text", "tds => tds.map(t => t.textContent)")
            assert "old" in group_cells
            shot = tmp_path / "leaderboard.png"
            page.screenshot(path=str(shot), full_page=True)
            # the hostile submission's detail view: its strings stay text
            page.locator("#rows tr.unverified button").click()
            assert "<i>grp</i>" in page.eval_on_selector_all(
                "#detail td.text", "tds => tds.map(t => t.textContent)")
            assert page.locator("#detail i").count() == 0 and page.locator("img").count() == 0
        finally:
            browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests
    assert shot.stat().st_size > 10_000
    print(f"leaderboard screenshot: {shot}")
    if os.environ.get("LEADERBOARD_SCREENSHOT_DIR"):
        shutil.copy(shot, os.environ["LEADERBOARD_SCREENSHOT_DIR"])
