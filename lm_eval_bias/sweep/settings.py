"""The settings grammar of `lm-eval-bias sweep`: one setting (`rtn:4:g64`) to hf-quant model_args,
checked by the method itself; the list of settings with its duplicate checks (also after defaults
are filled in); the seeds and the base model_args. Runs nothing, writes nothing. See the package
docstring for the grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasEvalError

#: model_args that the sweep itself sets (per setting or from its own options).
_RESERVED_MODEL_ARGS = ("quant", "load_seconds", "device", "batch_size", "max_batch_size")

SETTINGS_HELP = """\
settings (comma-separated):
  METHOD[:BITS][:gSIZE][:KEY=VALUE...]   METHOD is a quant= name of hf-quant
  none           the model as loaded (required: the report's reference)
  rtn:4          quant=rtn,bits=4
  rtn:4:g64      quant=rtn,bits=4,group_size=64   (g-1: one group per output row)
  rtn:3:g64:sym=true, torchao_intx:4:g32, quanto:weights=int4, nf4, bnb8, torchao_int8
  gptq:4:g128:calib=wikitext2:n_calib=128   (calib= also takes a .txt or .jsonl path)
  lists inside a value use "|": rtn:4:skip=lm_head|mlp.down_proj
run folders: OUT/<setting with : -> _, = -> -, | -> +>[_seed<k>], e.g. OUT/rtn_4_g64_seed1
--backend vllm (with --plan): none, or rtn|gptq|awq|smoothquant:BITS[:gSIZE][:KEY=VALUE...]
  (4 -> W4A16, 8 -> W8A16, smoothquant:8 -> W8A8; keys scheme, sym, format, calib, n_calib,
  calib_len, calib_seed), each written by lm-eval-bias quantize into OUT/checkpoints/<setting>"""

_FOLDER_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_KEY = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Setting:
    """One quantization setting: `method` and its options (values as text, in canonical order)."""

    method: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        parts = [self.method]
        for key, value in self.options:
            if key == "bits":
                parts.append(value)
            elif key == "group_size":
                parts.append(f"g{value}")
            else:
                parts.append(f"{key}={value}")
        return ":".join(parts)

    @property
    def quant_args(self) -> str:
        """The hf-quant model_args of this setting, e.g. ``quant=rtn,bits=4,group_size=64``."""
        return ",".join([f"quant={self.method}"] + [f"{k}={v}" for k, v in self.options])

    @property
    def folder(self) -> str:
        name = self.text.replace(":", "_").replace("=", "-").replace("|", "+")
        return _FOLDER_UNSAFE.sub("-", name)


def parse_setting(text: str) -> Setting:
    """Parse one setting (see the module docstring) and check it with the method itself."""
    setting = split_setting(text)
    _check_with_quantizer(setting, text.strip())
    return setting


def split_setting(text: str) -> Setting:
    """The parts of one setting, in canonical order (not checked against any method)."""
    raw = text.strip()
    parts = [p.strip() for p in raw.split(":")]
    method = parts[0].lower()
    if not method:
        raise BiasEvalError(f"setting {raw!r} has no method; start it with a method name, e.g. "
                            "rtn:4")
    found: dict[str, str] = {}
    for part in parts[1:]:
        if re.fullmatch(r"[+-]?\d+", part):
            key, value = "bits", str(int(part))
        elif re.fullmatch(r"g[+-]?\d+", part, flags=re.IGNORECASE):
            key, value = "group_size", str(int(part[1:]))
        elif "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            key = key.lower()
            if not _KEY.fullmatch(key) or not value:
                raise BiasEvalError(f"setting {raw!r}: {part!r} is not KEY=VALUE with a name and a "
                                    "value, e.g. sym=true")
        else:
            raise BiasEvalError(f"setting {raw!r}: {part!r} is neither bits (e.g. 4), a group size "
                                "(e.g. g64) nor KEY=VALUE (e.g. sym=true)")
        if key == "quant":
            raise BiasEvalError(f"setting {raw!r}: the method is the first part; drop quant=")
        if key in found:
            raise BiasEvalError(f"setting {raw!r} gives {key} twice; give it once")
        found[key] = value
    order = [k for k in ("bits", "group_size") if k in found] + \
        [k for k in found if k not in ("bits", "group_size")]
    return Setting(method, tuple((k, found[k]) for k in order))


def lm_eval_model_args(text: str) -> dict[str, Any]:
    """model_args text parsed as `lm_eval run --model_args` parses it (values cast: "4" -> 4,
    "true" -> True)."""
    from lm_eval_bias.sweep.runner import parse_key_values

    return parse_key_values(text, "model_args")


def _check_with_quantizer(setting: Setting, raw: str):
    """Build the method from the model_args exactly as lm-eval will parse them, so an unknown
    method, an option it does not take, a bad value or a missing library fail now, in one line.
    Returns the built quantizer."""
    from lm_eval_bias.models.quant import QUANTIZERS

    args = lm_eval_model_args(setting.quant_args)
    quant = args.pop("quant")
    method = "none" if quant is None else str(quant).lower()
    try:
        quantizer = QUANTIZERS.build(method, args)
        quantizer.validate_environment()
    except BiasEvalError as exc:
        raise BiasEvalError(f"setting {raw!r}: {exc}") from None
    return quantizer


def effective_setting(setting: Setting) -> tuple:
    """What the method will actually do: every option it takes, with its default filled in and
    its value parsed (``sym=yes`` and ``sym=true`` agree; ``rtn:4`` is ``rtn:4:g128``). Options a
    method does not keep under their own name are compared as given."""
    quantizer = _check_with_quantizer(setting, setting.text)
    given = dict(setting.options)
    return (quantizer.name, tuple((option, repr(getattr(quantizer, option, given.get(option))))
                                  for option in type(quantizer).options))


def quantize_args_of(setting: Setting) -> list[str]:
    """`lm-eval-bias quantize` arguments (without MODEL and --output) for a setting of the vllm
    backend: METHOD:BITS[:gSIZE][:KEY=VALUE...] with METHOD rtn, gptq, awq or smoothquant; BITS
    4 -> W4A16, 8 -> W8A16 (smoothquant: W8A8); keys scheme (W4A16, W8A16, W8A8), sym (false
    -> --asym), format, calib, n_calib, calib_len, calib_seed. [] for none."""
    from lm_eval_bias.models.quantize_checkpoint import (
        COMPATIBLE,
        QuantizeSpec,
        check_scheme_options,
    )

    if setting.method == "none":
        if setting.options:
            raise BiasEvalError(f"setting {setting.text}: none takes no options")
        return []
    if setting.method not in COMPATIBLE:
        raise BiasEvalError(f"setting {setting.text}: --backend vllm evaluates real checkpoints "
                            f"written by lm-eval-bias quantize; use a method of "
                            f"{', '.join(COMPATIBLE)} (e.g. rtn:4:g64) or none")
    opts = dict(setting.options)
    bits = opts.pop("bits", None)
    scheme = opts.pop("scheme", None)
    if scheme is None:
        by_bits = {"4": "W4A16", "8": "W8A8" if setting.method == "smoothquant" else "W8A16"}
        if bits not in by_bits:
            raise BiasEvalError(f"setting {setting.text}: give bits 4 or 8 (or scheme=W8A8)")
        scheme = by_bits[bits]
    elif bits is not None and f"W{bits}" != scheme.upper()[:2]:
        raise BiasEvalError(f"setting {setting.text}: bits {bits} and scheme {scheme} disagree")
    args = ["--method", setting.method, "--scheme", scheme.upper()]
    flags = {"format": "--format", "calib": "--calib", "n_calib": "--n-calib",
             "calib_len": "--calib-len", "calib_seed": "--calib-seed",
             "group_size": "--group-size"}
    spec_kwargs = {}
    for key, value in opts.items():
        if key == "sym":
            if value.lower() in ("false", "no", "0"):
                args.append("--asym")
                spec_kwargs["symmetric"] = False
            elif value.lower() not in ("true", "yes", "1"):
                raise BiasEvalError(f"setting {setting.text}: sym takes true or false")
        elif key in flags:
            args += [flags[key], value]
        else:
            raise BiasEvalError(f"setting {setting.text}: {key} is not an option of lm-eval-bias "
                                f"quantize (options: sym, scheme, {', '.join(flags)})")
    try:
        spec = QuantizeSpec(model="", output=Path(), method=setting.method, scheme=args[3],
                            fmt=opts.get("format", "compressed-tensors"),
                            group_size=int(opts["group_size"]) if "group_size" in opts else None,
                            calib=opts.get("calib"), **spec_kwargs)
        check_scheme_options(spec)
    except BiasEvalError as exc:
        raise BiasEvalError(f"setting {setting.text}: {exc}") from None
    return args


def parse_settings(text: str, backend: str = "hf-quant") -> list[Setting]:
    """Comma-separated settings; refuses an empty list, a setting given twice (also in another
    spelling) and two settings whose folder names would collide; requires ``none``."""
    raws = [s for s in (text or "").split(",")]
    if not any(s.strip() for s in raws):
        raise BiasEvalError("--settings is empty; give e.g. --settings none,rtn:8,rtn:4")
    settings: list[Setting] = []
    effective: list[tuple] = []
    for raw in raws:
        if not raw.strip():
            raise BiasEvalError(f"--settings {text!r} has an empty entry; remove the extra comma")
        if backend == "vllm":
            setting = split_setting(raw)
            this = tuple(quantize_args_of(setting))
        else:
            setting = parse_setting(raw)
            this = effective_setting(setting)
        for other, other_effective in zip(settings, effective):
            if other == setting:
                raise BiasEvalError(f"setting {setting.text} is given twice in --settings; give "
                                    "each once")
            if other_effective == this:
                raise BiasEvalError(f"settings {other.text} and {setting.text} are the same once "
                                    "defaults are filled in; give each setting once")
            if other.folder == setting.folder:
                raise BiasEvalError(f"settings {other.text} and {setting.text} would share the run "
                                    f"folder {setting.folder}; give values that differ in letters "
                                    "or digits")
        settings.append(setting)
        effective.append(this)
    if not any(s.method == "none" for s in settings):
        raise BiasEvalError("--settings has no 'none': the report compares every setting with the "
                            "unquantized model; add none")
    if len(settings) < 2:
        raise BiasEvalError("--settings has only 'none'; add at least one quantized setting, "
                            "e.g. none,rtn:4")
    return settings


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> [0, 1, 2]; None -> None (lm-eval's default seeds)."""
    if text is None:
        return None
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+", part) or int(part) >= 2 ** 32:
            raise BiasEvalError(f"--seeds {text!r}: {part!r} is not an integer from 0 to 2**32-1; "
                                "give e.g. --seeds 0,1,2")
        if int(part) in seeds:
            raise BiasEvalError(f"--seeds {text!r} gives seed {int(part)} twice; give each once")
        seeds.append(int(part))
    return seeds


def parse_model_args(text: str) -> dict[str, Any]:
    """The base model_args as lm-eval parses them; they must name the checkpoint and leave the
    quantization and the device to the sweep."""
    from lm_eval_bias.models.quant import QUANTIZERS

    args = lm_eval_model_args(text)
    if not isinstance(args.get("pretrained"), str) or not args["pretrained"]:
        raise BiasEvalError(f"--model-args {text!r} has no pretrained=; give the checkpoint, e.g. "
                            "--model-args pretrained=HuggingFaceTB/SmolLM2-135M")
    taken = [k for k in args if k in _RESERVED_MODEL_ARGS or k in QUANTIZERS.option_names()]
    if taken:
        raise BiasEvalError(f"--model-args gives {', '.join(taken)}, which the sweep sets itself "
                            "(quantization from --settings, --device, --batch-size); remove it")
    return args


