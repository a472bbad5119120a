"""The sweep's shared weights (lm_eval_bias/sweep/weights.py): every quantizer kind runs on a
copy of the module tree over one set of tensors, and afterwards the master is exactly the loaded
model again (every parameter and buffer equal to a fresh load, bit for bit), with hooks, config
and modules untouched; a tensor that cannot be put back is a one-line error."""

from __future__ import annotations

import pytest
import torch

from lm_eval_bias.errors import BiasEvalError
from lm_eval_bias.models.hf_quant import HFQuantLM
from lm_eval_bias.sweep.weights import SharedWeights, checkpoint_files, fingerprint


def _load(model_dir):
    lm = HFQuantLM(pretrained=str(model_dir), device="cpu", batch_size=1)
    return lm


def _state(model) -> dict:
    out = {}
    for name, t in [*model.named_parameters(remove_duplicate=False),
                    *model.named_buffers(remove_duplicate=False)]:
        out[name] = t.detach().clone()
    return out


def _same(model, reference: dict) -> list[str]:
    now = _state(model)
    assert now.keys() == reference.keys()
    return [k for k in now if now[k].dtype != reference[k].dtype
            or not torch.equal(now[k], reference[k])]


def _quantize(master: SharedWeights, quant: str, options: dict):
    """Run one setting as the sweep does: HFQuantLM on a shared copy, then drop it."""
    shared = master.share()
    run = HFQuantLM(pretrained=shared, quant=quant, load_seconds=1.0, device="cpu",
                    batch_size=1, **options)
    record = run.get_model_info()["quantization"]
    del run, shared
    return record


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir, tmp_path_factory):
    lm = _load(tiny_llama_dir)
    lines: list[str] = []
    weights = SharedWeights(lm.model, 1.0, lines.append)
    scratch = tmp_path_factory.mktemp("scratch") / "weights.safetensors"
    weights.prepare(checkpoint_files(str(tiny_llama_dir)), scratch)
    fresh = _state(_load(tiny_llama_dir).model)
    return {"weights": weights, "lm": lm, "fresh": fresh, "lines": lines, "scratch": scratch}


def test_sources_are_the_checkpoint_and_a_scratch_file_for_the_rest(loaded):
    line = loaded["lines"][-1]
    assert "tensors can be read back from the checkpoint" in line
    # the rotary frequencies are a non-persistent buffer: not in the checkpoint, so in scratch
    from safetensors import safe_open

    with safe_open(str(loaded["scratch"]), framework="pt") as fh:
        kept = list(fh.keys())
    assert kept and all("rotary_emb" in k for k in kept)


@pytest.mark.parametrize("quant, options, changes_in_place", [
    ("none", {}, False),
    ("rtn", {"bits": 4, "group_size": 32}, True),
    ("rtn_act", {"bits": 8, "act_bits": 8, "group_size": -1, "smooth_alpha": 0.5}, True),
    ("torchao_int8", {}, False),
    ("quanto", {"weights": "int8"}, False),
])
def test_after_each_setting_the_weights_are_exactly_the_loaded_ones(loaded, quant, options,
                                                                    changes_in_place):
    weights, model = loaded["weights"], loaded["weights"].model
    hooks_before = sum(len(m._forward_pre_hooks) for m in model.modules())
    modules_before = [(n, type(m)) for n, m in model.named_modules()]
    record = _quantize(weights, quant, options)
    assert record["method"] == quant
    if quant != "none":
        assert record["kl_fixed_text"] >= 0
    changed = _same(model, loaded["fresh"])
    # in place (rtn's weights, SmoothQuant's norms) the master changed; replacements did not
    assert bool(changed) == changes_in_place, changed
    if quant == "rtn_act":
        assert any("layernorm" in k for k in changed)  # smoothing divided the norms in place
    n_lines = len(loaded["lines"])
    shared = weights.share()  # puts back what changed
    assert _same(model, loaded["fresh"]) == []
    assert [(n, type(m)) for n, m in model.named_modules()] == modules_before
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == hooks_before == 0
    assert getattr(model.config, "quantization_config", None) is None
    if changes_in_place:
        assert "put back" in loaded["lines"][n_lines]
    del shared


def test_a_load_time_setting_frees_the_weights_and_they_come_back(loaded):
    weights, model = loaded["weights"], loaded["weights"].model
    weights.share()
    weights.release()
    assert sum(p.numel() for p in model.parameters()) == 0
    weights.share()
    assert _same(model, loaded["fresh"]) == []
    # tied parameters stay one tensor
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    assert len(names) == len(list(model.parameters()))


def test_a_tensor_that_cannot_be_put_back_is_an_error(tiny_llama_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, copy)
    lm = _load(copy)
    weights = SharedWeights(lm.model, 1.0, lambda _: None)
    weights.prepare(checkpoint_files(str(copy)), tmp_path / "scratch.safetensors")
    _quantize(weights, "rtn", {"bits": 4, "group_size": 32})
    # the checkpoint changed on disk after loading: what it gives back is not what was loaded
    state = load_file(str(copy / "model.safetensors"))
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(copy / "model.safetensors"))
    with pytest.raises(BiasEvalError, match="could not be put back from .*rerun the sweep") as info:
        weights.share()
    assert "\n" not in str(info.value)


def test_fingerprint_sees_one_bit():
    a = torch.zeros(4, 4)
    b = a.clone()
    b.view(torch.int32)[2, 3] = 1  # the smallest subnormal
    assert fingerprint(a) == fingerprint(a.clone()) != fingerprint(b)
    assert fingerprint(a) != fingerprint(a.reshape(16))  # the shape is part of it
    assert fingerprint(a) != fingerprint(a.to(torch.float64))
