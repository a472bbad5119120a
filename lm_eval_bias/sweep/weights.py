"""The full-precision weights of a sweep: loaded once, shared by every setting, and put back after
each, so that a sweep holds one copy of the model, as one `lm_eval` run does.

`SharedWeights` takes the model that hf-quant loaded with quant=none. `prepare` takes a
fingerprint of every parameter and buffer (BLAKE2b of its bytes, shape and dtype) and finds where
each can be read back from: the checkpoint's safetensors file, when the tensor stored there, cast
to the loaded dtype, has the loaded tensor's fingerprint; otherwise a scratch safetensors file
written once into the output folder (`store.WEIGHTS_FILE`; e.g. weights from a GGUF file, merged
PEFT adapters, non-persistent buffers such as rotary frequencies).

Each setting gets `share()`: a copy of the module tree (its config, hooks and attributes its own)
whose parameters and buffers are new tensor objects over the master's storage, so no weight is
copied. What a quantizer replaces there (torchao's tensor subclasses, quanto's and gptq's modules,
a `.data` assignment, activation hooks) stays in that copy and is freed with it; what it changes
in place (rtn's weights, SmoothQuant's scaling of norms and linears) reaches the master's storage.
Before the next setting, the fingerprints find those tensors and they are read back from their
source, one tensor at a time (safetensors' `safe_open`); a tensor whose fingerprint still differs
afterwards is an error, never a run on changed weights. A method that quantizes while loading
(bitsandbytes) does not start from these weights: `release()` frees them while it runs, and
they are all read back for the next setting that needs them.

Imports torch and safetensors only when used; nothing of lm-eval.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasEvalError

#: safetensors' dtype codes, by torch dtype name
_SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}
_MIB = 1 << 20


def fingerprint(tensor) -> bytes:
    """BLAKE2b of a tensor's shape, dtype and bytes (read on the CPU, one tensor at a time)."""
    import torch

    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    data = t.contiguous().reshape(-1).view(torch.uint8).numpy()
    digest = hashlib.blake2b(f"{tuple(t.shape)} {t.dtype}".encode(), digest_size=20)
    digest.update(data)
    return digest.digest()


def write_safetensors(path: Path, tensors: list[tuple[str, Any]]) -> None:
    """Write `tensors` ((name, tensor), ...) as one safetensors file, streaming each tensor's
    bytes from memory (no second copy of them)."""
    header, offset = {}, 0
    for name, t in tensors:
        code = _SAFETENSORS_DTYPES.get(str(t.dtype).removeprefix("torch."))
        if code is None:
            raise BiasEvalError(f"sweep: cannot keep {name} ({t.dtype}) for restoring; a sweep "
                                "starts from an unquantized checkpoint")
        size = t.numel() * t.element_size()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset,
                                                                                offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    import torch

    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        for _, t in tensors:
            fh.write(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)


def checkpoint_files(pretrained: str, revision: str | None = None,
                     subfolder: str | None = None) -> list[Path]:
    """The safetensors files of a checkpoint, in a local folder or in the Hugging Face cache;
    [] when it has none (then every tensor goes to the scratch file)."""
    folder = Path(pretrained).expanduser()
    if folder.is_dir():
        base = folder / subfolder if subfolder else folder

        def get(name: str) -> Path | None:
            return base / name if (base / name).is_file() else None
    else:
        def get(name: str) -> Path | None:
            try:
                from huggingface_hub import try_to_load_from_cache

                found = try_to_load_from_cache(
                    pretrained, f"{subfolder}/{name}" if subfolder else name,
                    revision=revision or "main")
            except Exception:  # noqa: BLE001 - not a hub id we can look up: nothing to read back
                return None
            return Path(found) if isinstance(found, str) else None
    index = get("model.safetensors.index.json")
    if index is not None:
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [get(name) for name in names]
        return files if all(files) else []
    single = get("model.safetensors")
    return [single] if single else []


@dataclass
class _Entry:
    """One distinct tensor of the model (tied names share one entry)."""

    names: list[str]
    tensor: Any
    shape: tuple = ()
    dtype: Any = None
    device: Any = None
    digest: bytes = b""
    source: tuple[str, str] | None = None  # (safetensors file, name in it)

    @property
    def nbytes(self) -> int:
        return int(self.tensor.numel()) * self.tensor.element_size()


class SharedWeights:
    """The sweep's one copy of the full-precision model (see the module docstring)."""

    def __init__(self, model, load_seconds: float | None,
                 log: Callable[[str], None] = print) -> None:
        import torch

        self.model = model
        self.load_seconds = load_seconds
        self.log = log
        found: dict[int, _Entry] = {}
        for name, t in [*model.named_parameters(remove_duplicate=False),
                        *model.named_buffers(remove_duplicate=False)]:
            if t is not None:
                found.setdefault(id(t), _Entry([], t)).names.append(name)
        for entry in found.values():
            t = entry.tensor
            if type(t) not in (torch.Tensor, torch.nn.Parameter) or t.device.type == "meta":
                raise BiasEvalError(
                    f"sweep: {entry.names[0]} of the loaded model is a {type(t).__name__} on "
                    f"{t.device} (a quantized or offloaded checkpoint?); a sweep starts from an "
                    "unquantized checkpoint held in memory")
            entry.shape, entry.dtype, entry.device = tuple(t.shape), t.dtype, t.device
        self._entries = list(found.values())
        self._dirty = self._released = self._prepared = False

    # -- before the first setting -------------------------------------------------------------

    def prepare(self, files: list[Path], scratch: Path) -> None:
        """Fingerprint every tensor and find its source: `files` (the checkpoint's safetensors)
        where they hold it as loaded, else `scratch`, written here."""
        from safetensors import safe_open

        where = {}
        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open is not iterable
                    where.setdefault(key, str(path))
        prefix = getattr(self.model, "base_model_prefix", "") or ""
        for entry in self._entries:
            entry.digest = fingerprint(entry.tensor)
            for key in _candidate_keys(entry.names, prefix):
                if key in where and _stored_digest(where[key], key, entry.dtype) == entry.digest:
                    entry.source = (where[key], key)
                    break
        missing = [e for e in self._entries if e.source is None]
        if missing:
            write_safetensors(scratch, [(e.names[0], e.tensor) for e in missing])
            for entry in missing:
                entry.source = (str(scratch), entry.names[0])
        self._prepared = True
        self.log(f"{len(self._entries) - len(missing)} of {len(self._entries)} tensors can be read "
                 f"back from the checkpoint; {len(missing)} "
                 f"({sum(e.nbytes for e in missing) / _MIB:.1f} MiB) that it does not hold as "
                 f"loaded were written to {scratch.name}")

    # -- per setting --------------------------------------------------------------------------

    def share(self):
        """The model for one setting: a copy of the module tree over these weights' storage."""
        import torch

        if not self._prepared:
            raise RuntimeError("SharedWeights.prepare() must run before the first share()")
        self._make_pristine()
        memo = {}
        for entry in self._entries:
            t = entry.tensor
            twin = t.detach()
            if isinstance(t, torch.nn.Parameter):
                twin = torch.nn.Parameter(twin, requires_grad=t.requires_grad)
            memo[id(t)] = twin
        self._dirty = True
        return copy.deepcopy(self.model, memo)

    def release(self) -> None:
        """Free the weights while a setting that loads its own model runs (read back later)."""
        import torch

        for entry in self._entries:
            entry.tensor.data = torch.empty(0, dtype=entry.dtype, device=entry.device)
        self._released = True

    def _make_pristine(self) -> None:
        if self._released:
            changed = list(self._entries)
        elif self._dirty:
            changed = [e for e in self._entries if not self._intact(e)]
        else:
            return
        if changed:
            self._read_back(changed)
            if not self._released:
                self.log(f"put back {len(changed)} tensors "
                         f"({sum(e.nbytes for e in changed) / _MIB:.1f} MiB) that the last "
                         "setting changed in place")
        self._dirty = self._released = False

    @staticmethod
    def _intact(entry: _Entry) -> bool:
        t = entry.tensor
        return ((tuple(t.shape), t.dtype, t.device) == (entry.shape, entry.dtype, entry.device)
                and fingerprint(t) == entry.digest)

    def _read_back(self, entries: list[_Entry]) -> None:
        import torch
        from safetensors import safe_open

        for entry in entries:
            path, key = entry.source
            # one tensor per opening: the file's pages are unmapped again right after
            with safe_open(path, framework="pt") as handle:
                value = handle.get_tensor(key).to(entry.dtype)
                t = entry.tensor
                if (tuple(t.shape), t.dtype, t.device) == (entry.shape, entry.dtype,
                                                           entry.device):
                    with torch.no_grad():
                        t.copy_(value)
                else:
                    t.data = value.to(entry.device, copy=True)
                del value
            if not self._intact(entry):
                raise BiasEvalError(
                    f"sweep: {entry.names[0]} could not be put back from {path} after a setting "
                    "changed it; the remaining settings would run on changed weights; rerun the "
                    "sweep (it resumes with the unfinished settings)")


def _stored_digest(path: str, key: str, dtype) -> bytes:
    """The fingerprint of a checkpoint tensor cast to `dtype` (one tensor per opening, so that
    the file's pages do not stay mapped next to the loaded weights)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        return fingerprint(handle.get_tensor(key).to(dtype))


def _candidate_keys(names: list[str], prefix: str) -> list[str]:
    """Names under which a checkpoint may store a tensor: its own, and with the base model's
    prefix taken off or put on (a base-model checkpoint loaded with a head, or the reverse)."""
    keys = list(names)
    if prefix:
        keys += [n[len(prefix) + 1:] for n in names if n.startswith(prefix + ".")]
        keys += [f"{prefix}.{n}" for n in names if not n.startswith(prefix + ".")]
    return keys
