"""Scorers: registry, table-driven cases of the offline scorers, failure -> missing (never
"non-toxic"), the hf: path on a tiny random-init classifier, and perspective against a local
stand-in server that answers like the real API (including 429s and 500s)."""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.scorers import available_scorers, get_scorer, register_scorer
from lm_eval_bias.scorers import profanity as profanity_mod
from lm_eval_bias.scorers.base import Scorer

# ---------------------------------------------------------------- registry


def test_registry_names_and_kinds():
    assert available_scorers() == ["detoxify[:<model>]", "hf:<model>", "judge:<model>",
                                   "perspective", "profanity", "regard[:<model>]", "vader"]
    assert available_scorers("sentiment") == ["regard[:<model>]", "vader"]
    assert "vader" not in available_scorers("toxicity")


@pytest.mark.parametrize(
    ("spec", "kind", "message"),
    [
        ("nope", None, ("unknown scorer 'nope'; choose one of detoxify[:<model>], hf:<model>, "
                       "judge:<model>, perspective")),
        ("vader", "toxicity", "unknown toxicity scorer 'vader'"),
        ("hf", None, "needs an argument: use hf:<model id or path>"),
        ("profanity:x", None, "takes no argument"),
        ("", None, "must be a non-empty string"),
    ],
)
def test_get_scorer_refuses(spec, kind, message):
    with pytest.raises(BiasEvalError, match=re.escape(message)) as exc:
        get_scorer(spec, kind)
    assert "\n" not in str(exc.value)


def test_register_refuses_duplicates_and_non_scorers():
    class Other(Scorer):
        name = "profanity"
        kind = "toxicity"

        def _load(self):
            pass

        def _score_batch(self, texts):
            return [0.0] * len(texts)

    with pytest.raises(ValueError, match="already registered"):
        register_scorer(Other)
    with pytest.raises(TypeError):
        register_scorer(dict)


# ---------------------------------------------------------------- offline scorers, table-driven


@pytest.mark.parametrize(
    ("text", "sign", "cls"),
    [
        ("What a wonderful, kind and generous person.", 1, 1),
        ("He is a horrible, cruel and hateful man.", -1, -1),
        ("The table has four legs.", 0, 0),
        ("", 0, 0),
        ("good", 1, 0),  # compound 0.44: positive, but below the +0.5 class threshold
    ],
)
def test_vader(text, sign, cls):
    from lm_eval_bias.metrics.sentiment import sentiment_class

    (score,) = get_scorer("vader").score([text])
    assert -1.0 <= score <= 1.0
    assert (score > 0) - (score < 0) == sign
    assert sentiment_class(score) == cls


@pytest.mark.parametrize(
    ("text", "toxic"),
    [
        ("you are a stupid idiot", True),
        ("Have a nice day.", False),
        ("The weather is mild today.", False),
        # the scorer's own bias, reported: a harmless identity statement is flagged
        ("I am a gay Muslim woman.", True),
    ],
)
def test_profanity(text, toxic):
    (score,) = get_scorer("profanity").score([text])
    assert 0.0 <= score <= 1.0 and (score >= 0.5) == toxic


def test_profanity_prints_its_caveat_once(capsys, monkeypatch):
    monkeypatch.setattr(profanity_mod, "_warned", False)
    s = get_scorer("profanity")
    s.score(["a"])
    get_scorer("profanity").score(["b"])
    err = capsys.readouterr().err
    assert err.count("weak lexical proxy that over-flags") == 1
    info = s.info()
    assert info["name"] == "profanity" and info["version"] and info["kind"] == "toxicity"
    assert s.label().startswith("profanity (alt-profanity-check ")


def test_missing_library_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "profanity_check", None)
    with pytest.raises(BiasEvalError, match=r"pip install 'alt-profanity-check>=1.5'") as exc:
        get_scorer("profanity").check()
    assert "\n" not in str(exc.value)


def test_scores_are_batched_in_order():
    s = get_scorer("vader")
    s.batch_size = 2
    texts = ["good", "bad", "terrible", "great", "ok"]
    assert s.score(texts) == [get_scorer("vader").score([t])[0] for t in texts]


# ---------------------------------------------------------------- failure -> missing


class _Flaky(Scorer):
    name = "flaky-test"
    kind = "toxicity"
    calls = 0

    def _load(self):
        pass

    def _score_batch(self, texts):
        type(self).calls += 1
        if any("BOOM" in t for t in texts):
            raise RuntimeError("model exploded")
        return [0.9 if "toxic" in t else 0.1 for t in texts]


def test_failure_is_missing_not_non_toxic():
    s = _Flaky()
    s.batch_size = 3
    got = s.score(["toxic words", "BOOM", "fine", "toxic", "nan"])
    assert got == [0.9, None, 0.1, 0.9, 0.1]
    from lm_eval_bias.metrics.toxicity import agg_n_scorer_failures, toxicity_rate

    assert toxicity_rate(got) == pytest.approx(2 / 4)  # the failure is left out, not "0"
    assert agg_n_scorer_failures([{"toxicity": got}]) == 1


def test_non_finite_scores_are_missing():
    class _Nan(_Flaky):
        def _score_batch(self, texts):
            return [math.nan, math.inf, "x", 0.3][: len(texts)]

    assert _Nan().score(["a", "b", "c", "d"]) == [None, None, None, 0.3]


# ---------------------------------------------------------------- hf: tiny classifier


@pytest.fixture(scope="module")
def tiny_classifier(tiny_llama_dir, tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-clf")
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        pad_token_id=tok.pad_token_id, num_labels=2,
        id2label={0: "non-toxic", 1: "toxic"}, label2id={"non-toxic": 0, "toxic": 1},
    )
    LlamaForSequenceClassification(config).save_pretrained(out)
    multi = tmp_path_factory.mktemp("tiny-clf-multi")
    tok.save_pretrained(multi)
    config.num_labels = 3
    config.id2label = {0: "insult", 1: "toxic", 2: "threat"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    config.problem_type = "multi_label_classification"
    LlamaForSequenceClassification(config).save_pretrained(multi)
    return out, multi


def test_hf_scores_the_toxic_label(tiny_classifier):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path, _ = tiny_classifier
    s = get_scorer(f"hf:{path}")
    s.batch_size = 2
    texts = ["A quick test.", "Another, longer sentence about the lazy dog.", "x"]
    got = s.score(texts)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    for text, value in zip(texts, got, strict=True):
        with torch.no_grad():
            logits = model(**tok([text], return_tensors="pt")).logits
        assert value == pytest.approx(float(torch.softmax(logits, -1)[0, 1]), abs=1e-5)
    info = s.info()
    assert info["toxic_label"] == "toxic" and info["activation"] == "softmax"
    assert info["name"] == f"hf:{path}" and info["version"]


def test_hf_multilabel_and_label_choice(tiny_classifier):
    _, multi = tiny_classifier
    s = get_scorer(f"hf:{multi}")
    s.check()
    assert (s.toxic_index, s.extra_info()["activation"]) == (1, "sigmoid")
    t = get_scorer(f"hf:{multi}#threat")
    t.check()
    assert t.toxic_index == 2
    assert all(0.0 <= v <= 1.0 for v in t.score(["hello", "world"]))
    with pytest.raises(BiasEvalError, match="has no label 'nope'"):
        get_scorer(f"hf:{multi}#nope").check()


def test_hf_unreachable_model_is_a_one_line_error(tmp_path):
    with pytest.raises(BiasEvalError, match="cannot load sequence classifier") as exc:
        get_scorer(f"hf:{tmp_path / 'missing'}").check()
    assert "\n" not in str(exc.value)
    with pytest.raises(BiasEvalError, match="cannot load sequence classifier"):
        get_scorer("hf:unitary/toxic-bert").check()  # HF_HUB_OFFLINE=1: no hub here


# ---------------------------------------------------------------- perspective stand-in


def _perspective_json(value: float) -> dict:
    # the shape of a real comments:analyze response (developers.perspectiveapi.com)
    return {
        "attributeScores": {
            "TOXICITY": {
                "spanScores": [{"begin": 0, "end": 10, "score": {"value": value,
                                                                   "type": "PROBABILITY"}}],
                "summaryScore": {"value": value, "type": "PROBABILITY"},
            }
        },
        "languages": ["en"],
        "detectedLanguages": ["en"],
    }


class _StandIn(BaseHTTPRequestHandler):
    script: ClassVar[dict] = {}
    seen: ClassVar[list] = []
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["comment"]["text"]
        with self.lock:
            self.seen.append((self.path, text, time.monotonic()))
            plan = self.script.get(text, [])
            status = plan.pop(0) if plan else 200
        if "key=test-key" not in self.path:
            status = 403
        if status == 200:
            payload = _perspective_json(0.9 if "idiot" in text else 0.05)
        else:
            payload = {"error": {"code": status, "message": "stand-in error",
                                 "status": "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 429:
            self.send_header("Retry-After", "0.05")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def perspective_server(monkeypatch):
    _StandIn.script, _StandIn.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "test-key")
    monkeypatch.setenv("PERSPECTIVE_API_URL",
                       f"http://127.0.0.1:{server.server_port}/v1alpha1/comments:analyze")
    monkeypatch.setenv("PERSPECTIVE_QPS", "0")
    monkeypatch.setenv("PERSPECTIVE_BACKOFF_S", "0.01")
    monkeypatch.setenv("PERSPECTIVE_MAX_RETRIES", "3")
    yield _StandIn
    server.shutdown()
    server.server_close()


def test_perspective_retries_429_and_500(perspective_server):
    perspective_server.script = {
        "you idiot": [429, 429],       # rate limited twice, then answered
        "calm words": [500],           # a server error, then answered
        "never works": [500] * 10,     # fails every retry -> missing
        "bad request": [400],          # refused (not retried) -> missing
    }
    s = get_scorer("perspective")
    got = s.score(["you idiot", "calm words", "never works", "bad request", ""])
    assert got[0] == pytest.approx(0.9) and got[1] == pytest.approx(0.05)
    assert got[2] is None and got[3] is None and got[4] is None  # never "non-toxic"
    texts = [t for _, t, _ in perspective_server.seen]
    assert texts.count("you idiot") == 3 and texts.count("calm words") == 2
    assert texts.count("never works") == 4 and texts.count("bad request") == 1
    assert "" not in texts
    # the Retry-After of a 429 is honoured: the retry waits at least 0.05 s
    times = [t for _, text, t in perspective_server.seen if text == "you idiot"]
    assert times[1] - times[0] >= 0.045
    assert s.info()["version"].startswith("perspective-api")


def test_perspective_rate_limit(perspective_server, monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_QPS", "20")
    s = get_scorer("perspective")
    s.check()
    start = time.monotonic()
    s.score(["a", "b", "c", "d", "e"])
    assert time.monotonic() - start >= 4 / 20 - 0.01


def test_perspective_precheck(perspective_server, monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "wrong-key")
    with pytest.raises(BiasEvalError, match=r"cannot reach .*\(HTTP 403\)") as exc:
        get_scorer("perspective").check()
    assert "\n" not in str(exc.value)
    monkeypatch.delenv("PERSPECTIVE_API_KEY")
    with pytest.raises(BiasEvalError, match="needs an API key in PERSPECTIVE_API_KEY"):
        get_scorer("perspective").check()


# ---------------------------------------------------------------- judge: a causal LM


def test_judge_scores_unsafe_probability(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    s = get_scorer(f"judge:{tiny_llama_dir}")
    s.batch_size = 3
    texts = ["A calm sentence.", "Another one, a little longer than the first.", "x"]
    got = s.score(texts)
    info = s.info()
    assert info["prompt"].count("{text}") == 1 and info["chat_template"] is False
    assert len(info["answer_tokens"]) == 2
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    for text, value in zip(texts, got, strict=True):
        with torch.no_grad():
            logits = model(**tok([s.prompt_for(text)], return_tensors="pt")).logits[0, -1]
        lp = torch.log_softmax(logits.float(), -1)[s.answer_ids]
        assert value == pytest.approx(float(torch.softmax(lp, -1)[1]), abs=1e-4)


def test_judge_unreachable_model(tmp_path):
    with pytest.raises(BiasEvalError, match="cannot load causal LM") as exc:
        get_scorer(f"judge:{tmp_path / 'missing'}").check()
    assert "\n" not in str(exc.value)
