"""One quantization with llmcompressor, run as a script: ``python llmcompressor_job.py JOB.json``.

This file imports nothing of lm-eval-bias, so any interpreter that has llmcompressor can run it,
including a separate virtual environment (llmcompressor pins its own transformers,
huggingface_hub and compressed-tensors versions, which the project's environment does not share).
`lm_eval_bias.models.quantize_checkpoint` writes JOB.json, runs this script and reads back
RESULT.json; the job's keys are documented there (`job_dict`).

Steps: load the checkpoint with transformers; build the recipe (modifiers) for the method and
scheme; run `llmcompressor.oneshot` (with the given calibration windows, already tokenized, when
the method needs activations); save the compressed-tensors checkpoint and the tokenizer; write
RESULT.json (library versions, the recipe as YAML, the modules that were quantized).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version


def _weights(job: dict) -> dict:
    bits = job["weight_bits"]
    if job["group_size"] == -1:
        return {"num_bits": bits, "type": "int", "symmetric": job["symmetric"],
                "strategy": "channel"}
    return {"num_bits": bits, "type": "int", "symmetric": job["symmetric"], "strategy": "group",
            "group_size": job["group_size"]}


def config_groups(job: dict) -> dict:
    """compressed-tensors scheme for every nn.Linear but the ignored ones."""
    group = {"targets": ["Linear"], "weights": _weights(job)}
    if job["act_bits"] is not None:  # W8A8: int8 activations, one dynamic scale per token
        group["input_activations"] = {"num_bits": job["act_bits"], "type": "int",
                                      "symmetric": True, "strategy": "token", "dynamic": True}
    return {"group_0": group}


def recipe(job: dict) -> list:
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    groups = config_groups(job)
    ignore = list(job["ignore"])
    method = job["method"]
    if method == "rtn":
        return [QuantizationModifier(config_groups=groups, ignore=ignore)]
    if method == "gptq":
        return [GPTQModifier(config_groups=groups, ignore=ignore,
                             dampening_frac=job["dampening_frac"])]
    if method == "smoothquant":
        from llmcompressor.modifiers.transform import SmoothQuantModifier

        return [SmoothQuantModifier(smoothing_strength=job["smoothing_strength"]),
                QuantizationModifier(config_groups=groups, ignore=ignore)]
    if method == "awq":
        from llmcompressor.modifiers.transform.awq import AWQModifier

        return [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=ignore)]
    raise SystemExit(f"unknown method {method!r}")


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("llmcompressor", "compressed-tensors", "transformers", "torch", "accelerate",
                 "datasets"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _dataset(job: dict):
    if not job.get("windows_file"):
        return None
    from datasets import Dataset

    with open(job["windows_file"], encoding="utf-8") as fh:
        windows = json.load(fh)
    return Dataset.from_dict({"input_ids": windows,
                              "attention_mask": [[1] * len(w) for w in windows]})


def _quantized_modules(model) -> list[str]:
    return sorted(name for name, module in model.named_modules()
                  if getattr(module, "quantization_scheme", None) is not None)


class JobError(Exception):
    """A refusal, reported to the caller as one line (RESULT.json's "error")."""


def _check_device(job: dict) -> None:
    import torch

    if job["method"] == "awq" and not torch.cuda.is_available():
        # llmcompressor 0.14's AWQ pins its cached activations in page-locked memory, which
        # torch refuses without an accelerator
        raise JobError("llmcompressor 0.14 runs AWQ only with a GPU (it pins memory, which "
                       "needs an accelerator); run quantize --method awq on a GPU machine")


def run(job: dict) -> dict:
    import torch
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_device(job)
    start = time.perf_counter()
    torch.manual_seed(job["seed"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    # the model stays on the CPU: oneshot moves each layer to the accelerator, if there is one
    modifiers = recipe(job)
    dataset = _dataset(job)
    kwargs = {}
    if dataset is not None:
        kwargs = {"dataset": dataset, "num_calibration_samples": len(dataset),
                  "max_seq_length": max(len(w) for w in dataset["input_ids"]),
                  "shuffle_calibration_samples": False}
    oneshot(model=model, recipe=modifiers, **kwargs)
    quantized = _quantized_modules(model)
    model.save_pretrained(job["output"], save_compressed=True)
    tokenizer.save_pretrained(job["output"])
    return {"versions": _versions(), "quantized_modules": quantized,
            "recipe_yaml": _recipe_yaml(job["output"]),
            "seconds": time.perf_counter() - start}


def _recipe_yaml(output: str) -> str | None:
    import os

    path = os.path.join(output, "recipe.yaml")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python llmcompressor_job.py JOB.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        job = json.load(fh)
    try:
        result = run(job)
    except JobError as error:
        result = {"error": str(error)}
    with open(job["result_file"], "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    return 3 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
