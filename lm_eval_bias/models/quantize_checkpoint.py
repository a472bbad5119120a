"""`lm-eval-bias quantize`: write a real quantized checkpoint with the library that owns its format.

    lm-eval-bias quantize MODEL --method rtn|gptq|awq|smoothquant --scheme W4A16|W8A16|W8A8 \\
        [--group-size N] [--asym] [--calib NAME|PATH] [--format compressed-tensors|gptq] \\
        [--python PATH] --output DIR

| --format | library | methods | schemes |
|---|---|---|---|
| compressed-tensors (default) | llmcompressor | rtn, gptq, awq, smoothquant | see `COMPATIBLE` |
| gptq | gptqmodel (through optimum, as `quant=gptq` of hf-quant) | gptq | W4A16, W8A16 |

llmcompressor pins transformers, huggingface_hub and compressed-tensors versions of its own, so it
usually lives in a separate virtual environment: the quantization step then runs as a subprocess
in that interpreter (`--python PATH`, or the side environment under the cache folder when it
exists), with `llmcompressor_job.py`, a script that imports nothing of this package. Calibration
windows are drawn here, with the same code and record as `quant=gptq` (`quant/calibration.py`), and
handed to the script already tokenized.

The checkpoint folder gets `lm_eval_bias_quantize.json` (`RECORD_FILE`): method, scheme, format,
group size, symmetry, ignored modules, the recipe, the calibration set (name, or file and its
SHA-256; window count, length and seed), and the library versions of the interpreter that
quantized. It loads with `lm_eval --model hf-quant` (recorded as quant=prequantized) and with
`lm_eval --model hf` / `--model vllm` as any compressed-tensors or GPTQ checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lm_eval_bias._cache import cache_dir
from lm_eval_bias.errors import BiasEvalError

RECORD_FILE = "lm_eval_bias_quantize.json"
RECORD_SCHEMA = "lm-eval-bias/quantize"
METHODS = ("rtn", "gptq", "awq", "smoothquant")
SCHEMES = {"W4A16": (4, None), "W8A16": (8, None), "W8A8": (8, 8)}  # weight bits, activation bits
FORMATS = ("compressed-tensors", "gptq")
COMPATIBLE = {
    "rtn": ("W4A16", "W8A16", "W8A8"),
    "gptq": ("W4A16", "W8A16", "W8A8"),
    "awq": ("W4A16",),
    "smoothquant": ("W8A8",),
}
#: Methods that read activations, so need calibration text.
CALIBRATED = ("gptq", "awq", "smoothquant")
#: llmcompressor's own scheme presets: W4A16 groups of 128, W8A16 and W8A8 one scale per row.
DEFAULT_GROUP_SIZE = {"W4A16": 128, "W8A16": -1, "W8A8": -1}
LLMCOMPRESSOR_PINS = "torch==2.13.0 llmcompressor==0.14.0"
SMOOTHING_STRENGTH = 0.8  # llmcompressor's W8A8 examples
DAMPENING_FRAC = 0.01  # llmcompressor's GPTQModifier default
JOB_SCRIPT = Path(__file__).with_name("llmcompressor_job.py")


def side_venv() -> Path:
    """Where the documented side environment for llmcompressor lives."""
    return cache_dir() / "llmcompressor-venv"


def side_venv_python() -> Path:
    return side_venv() / "bin" / "python"


def side_venv_command(venv: Path | None = None, python: str = "python") -> str:
    """The one command that creates the side environment (CPU torch; on a GPU machine use the
    torch build matching its CUDA instead)."""
    venv = venv or side_venv()
    return (f"{shlex.quote(python)} -m venv {shlex.quote(str(venv))} && "
            f"{shlex.quote(str(venv / 'bin' / 'pip'))} install {LLMCOMPRESSOR_PINS}")


@dataclass(frozen=True)
class QuantizeSpec:
    model: str
    output: Path
    method: str
    scheme: str
    fmt: str = "compressed-tensors"
    group_size: int | None = None
    symmetric: bool = True
    ignore: tuple[str, ...] = ("lm_head",)
    calib: str | None = None
    n_calib: int = 128
    calib_len: int = 512
    calib_seed: int = 0
    python: str | None = None

    @property
    def effective_group_size(self) -> int:
        return DEFAULT_GROUP_SIZE[self.scheme] if self.group_size is None else self.group_size

    @property
    def effective_calib(self) -> str | None:
        if self.method not in CALIBRATED:
            return None
        return self.calib or "wikitext2"


def check_spec(spec: QuantizeSpec) -> None:
    """Every refusal before any work, one line each."""
    check_scheme_options(spec)
    if not (Path(spec.model) / "config.json").is_file() and Path(spec.model).exists():
        raise BiasEvalError(f"MODEL {spec.model} has no config.json; give a transformers "
                            "checkpoint folder or a hub id")
    out = spec.output
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BiasEvalError(f"--output {out} exists and is not an empty folder; give a new folder")


def check_scheme_options(spec: QuantizeSpec) -> None:
    """The refusals that depend on the method, scheme and options alone (not on files)."""
    if spec.method not in METHODS:
        raise BiasEvalError(f"--method {spec.method}: choose one of {', '.join(METHODS)}")
    if spec.scheme not in SCHEMES:
        raise BiasEvalError(f"--scheme {spec.scheme}: choose one of {', '.join(SCHEMES)}")
    if spec.scheme not in COMPATIBLE[spec.method]:
        raise BiasEvalError(f"--method {spec.method} writes {', '.join(COMPATIBLE[spec.method])}, "
                            f"not {spec.scheme}")
    if spec.fmt not in FORMATS:
        raise BiasEvalError(f"--format {spec.fmt}: choose one of {', '.join(FORMATS)}")
    if spec.fmt == "gptq" and (spec.method != "gptq" or spec.scheme == "W8A8"):
        raise BiasEvalError("--format gptq takes --method gptq with --scheme W4A16 or W8A16; "
                            "use --format compressed-tensors for the others")
    if spec.fmt == "gptq" and tuple(spec.ignore) != ("lm_head",):
        raise BiasEvalError("--format gptq keeps exactly lm_head in full precision (as quant=gptq "
                            "does); drop --ignore or use --format compressed-tensors")
    if spec.fmt == "gptq" and spec.python:
        raise BiasEvalError("--python names the interpreter of llmcompressor; --format gptq runs "
                            "gptqmodel in this environment, so drop --python")
    size = spec.effective_group_size
    if size != -1 and size <= 0:
        raise BiasEvalError(f"--group-size must be a positive number of input features or -1 (one "
                            f"scale per output row), got {size}")
    if spec.scheme == "W8A8" and size != -1:
        raise BiasEvalError("--scheme W8A8 has one weight scale per output row (vLLM's int8 "
                            "kernels); drop --group-size or give -1")
    if spec.scheme == "W8A8" and not spec.symmetric:
        raise BiasEvalError("--scheme W8A8 is symmetric in llmcompressor; drop --asym")
    if spec.calib is not None and spec.method not in CALIBRATED:
        raise BiasEvalError(f"--method {spec.method} reads no activations, so --calib would be "
                            f"unused; drop it (calibrated methods: {', '.join(CALIBRATED)})")
    for name, value in (("--n-calib", spec.n_calib), ("--calib-len", spec.calib_len)):
        if value < 1:
            raise BiasEvalError(f"{name} must be at least 1, got {value}")


def find_python(spec: QuantizeSpec, log=print) -> str:
    """The interpreter that runs llmcompressor: --python, else this one when it has llmcompressor,
    else the side environment when it exists; otherwise the one-line error that creates it."""
    if spec.python:
        path = Path(spec.python).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BiasEvalError(f"--python {spec.python} is not an executable file; give the "
                                "python of an environment with llmcompressor")
        _require_llmcompressor(str(path))
        return str(path)
    if importlib.util.find_spec("llmcompressor") is not None:
        return sys.executable
    side = side_venv_python()
    if side.is_file():
        _require_llmcompressor(str(side))
        log(f"llmcompressor runs in the side environment {side_venv()}")
        return str(side)
    raise BiasEvalError(
        "llmcompressor is not installed here (it pins its own transformers, so it does not share "
        f"this environment); create its side environment once: {side_venv_command()} "
        "(or pass --python PATH of an environment that has llmcompressor)")


def _require_llmcompressor(python: str) -> None:
    probe = subprocess.run([python, "-c", "import llmcompressor"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise BiasEvalError(f"{python} cannot import llmcompressor ({last}); install it there: "
                            f"{python} -m pip install {LLMCOMPRESSOR_PINS}")


def calibration_windows(spec: QuantizeSpec) -> tuple[list[list[int]] | None, dict | None]:
    """Token windows and their record (as `quant=gptq` draws them), or (None, None) for RTN."""
    calib = spec.effective_calib
    if calib is None:
        return None, None
    from functools import lru_cache

    from transformers import AutoTokenizer

    from lm_eval_bias.models.quant.calibration import draw_windows, load_calibration_text

    text = load_calibration_text(calib, spec.method)
    tokenizer = AutoTokenizer.from_pretrained(spec.model)

    @lru_cache(maxsize=4)
    def tokens_of(index: int) -> tuple[int, ...]:
        return tuple(tokenizer(text.documents[index], add_special_tokens=False)["input_ids"])

    try:
        windows = draw_windows(len(text.documents), tokens_of, spec.n_calib, spec.calib_len,
                               spec.calib_seed)
    except BiasEvalError as error:
        raise BiasEvalError(f"--calib {calib}: {error}") from None
    record = {**text.record, "n_windows": spec.n_calib, "window_len": spec.calib_len,
              "seed": spec.calib_seed, "drawn_as": "GPTQ reference datautils (random windows)"}
    return windows, record


def job_dict(spec: QuantizeSpec, windows_file: str | None, result_file: str) -> dict[str, Any]:
    """What llmcompressor_job.py reads."""
    weight_bits, act_bits = SCHEMES[spec.scheme]
    return {"model": spec.model, "output": str(spec.output), "method": spec.method,
            "weight_bits": weight_bits, "act_bits": act_bits,
            "group_size": spec.effective_group_size, "symmetric": spec.symmetric,
            "ignore": list(spec.ignore), "seed": spec.calib_seed,
            "windows_file": windows_file, "result_file": result_file,
            "dampening_frac": DAMPENING_FRAC, "smoothing_strength": SMOOTHING_STRENGTH}


def run_llmcompressor(spec: QuantizeSpec, python: str, windows, log=print) -> dict:
    """Run the job script in `python`; returns its RESULT.json."""
    with tempfile.TemporaryDirectory(prefix="lm-eval-bias-quantize-") as tmp:
        windows_file = None
        if windows is not None:
            windows_file = os.path.join(tmp, "windows.json")
            Path(windows_file).write_text(json.dumps(windows), encoding="utf-8")
        result_file = os.path.join(tmp, "result.json")
        job_file = os.path.join(tmp, "job.json")
        Path(job_file).write_text(json.dumps(job_dict(spec, windows_file, result_file)),
                                  encoding="utf-8")
        log(f"running llmcompressor in {python}")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" or python == sys.executable}
        proc = subprocess.run([python, str(JOB_SCRIPT), job_file], env=env,
                              capture_output=True, text=True, check=False)
        if os.path.isfile(result_file):
            result = json.loads(Path(result_file).read_text(encoding="utf-8"))
            if "error" in result:
                raise BiasEvalError(result["error"])
        if proc.returncode != 0 or not os.path.isfile(result_file):
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or "no output"
            raise BiasEvalError(f"llmcompressor failed (exit {proc.returncode}) in {python}: "
                                f"{tail}")
        return result


def run_gptqmodel(spec: QuantizeSpec, log=print) -> dict:
    """GPTQ with gptqmodel in this environment, saved in the GPTQ format."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_bias.models.quant.base import library_version
    from lm_eval_bias.models.quant.gptq import GPTQQuantizer

    start = time.perf_counter()
    quantizer = GPTQQuantizer(bits=SCHEMES[spec.scheme][0], group_size=spec.effective_group_size,
                              sym=spec.symmetric, calib=spec.effective_calib,
                              n_calib=spec.n_calib, calib_len=spec.calib_len,
                              calib_seed=spec.calib_seed)
    quantizer.validate_environment()
    quantizer.check_checkpoint(None)
    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=torch.float32)
    quantizer.bind_tokenizer(tokenizer)
    log("running GPTQ with gptqmodel in this environment")
    report = quantizer.quantize(model)
    model.save_pretrained(spec.output)
    tokenizer.save_pretrained(spec.output)
    versions = {d: library_version(d) for d in ("gptqmodel", "optimum", "transformers", "torch")}
    return {"versions": versions, "quantized_modules": None, "recipe_yaml": None,
            "seconds": time.perf_counter() - start,
            "n_modules_quantized": report.n_modules_quantized}


def quantize_checkpoint(spec: QuantizeSpec, argv: list[str] | None = None, log=print) -> dict:
    """Write the checkpoint and its record into OUTPUT.partial, then rename it to OUTPUT (so a
    folder under the final name is always complete); returns the record."""
    check_spec(spec)
    python = find_python(spec, log) if spec.fmt == "compressed-tensors" else None
    windows, calib_record = calibration_windows(spec)
    final = spec.output
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    work = replace(spec, output=partial)
    if spec.fmt == "compressed-tensors":
        result = run_llmcompressor(work, python, windows, log)
    else:
        result = run_gptqmodel(work, log)
    record = _write_record(work, result, python, calib_record, argv)
    os.rename(partial, final)
    return record


def _write_record(spec: QuantizeSpec, result: dict, python: str | None,
                  calib_record: dict | None, argv: list[str] | None) -> dict:
    library = "llmcompressor" if spec.fmt == "compressed-tensors" else "gptqmodel"
    config = json.loads((spec.output / "config.json").read_text(encoding="utf-8"))
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        raise BiasEvalError(f"{library} wrote {spec.output} without a quantization_config; the "
                            "checkpoint is not quantized (report this)")
    from lm_eval_bias import __version__

    record = {
        "schema": RECORD_SCHEMA, "schema_version": 1,
        "source_model": (str(Path(spec.model).resolve()) if Path(spec.model).exists()
                         else spec.model),
        "method": spec.method, "scheme": spec.scheme, "format": spec.fmt, "library": library,
        "quant_method": qc.get("quant_method"), "group_size": spec.effective_group_size,
        "symmetric": spec.symmetric, "ignore": list(spec.ignore),
        "recipe": result.get("recipe_yaml"), "calibration": calib_record,
        "quantized_modules": result.get("quantized_modules"),
        "versions": {**result["versions"], "lm-eval-bias": __version__},
        "python": python or sys.executable, "seconds": round(result["seconds"], 3),
        "command": shlex.join(["lm-eval-bias", "quantize", *(argv or [])]) if argv else None,
    }
    (spec.output / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
