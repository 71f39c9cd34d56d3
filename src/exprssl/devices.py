"""The hardware a fit runs on, spelled as Lightning spells it (``accelerator``, ``devices``) for
pretraining (``training.TrainConfig``) and for the benchmark's cells
(``evaluation.config.BenchmarkConfig``), and resolved to torch devices in one place for what
Lightning does not run (the cells' stacked heads and XGBoost)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from .errors import ConfigError
from .options import OptionValueError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def available_accelerators() -> tuple[str, ...]:
    """The accelerator names Lightning can use on this machine (``auto`` and ``cpu`` always)."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

    present = {
        "cuda": CUDAAccelerator.is_available(),
        "mps": MPSAccelerator.is_available(),
        "tpu": XLAAccelerator.is_available(),
    }
    present["gpu"] = present["cuda"] or present["mps"]
    return tuple(a for a in ACCELERATORS if a in ("auto", "cpu") or present[a])


def parse_devices(v: Any) -> int | str | list[int]:
    """Lightning's ``devices``: 'auto', a count (-1: all) or a list of indices ('0,1' too)."""
    requirement = "'auto', a number of devices (>= 1, or -1 for all) or a list of device indices"
    if isinstance(v, str):
        text = v.strip()
        if text == "auto":
            return text
        try:
            v = int(text) if "," not in text else [int(i) for i in text.split(",") if i.strip()]
        except ValueError:
            raise OptionValueError(requirement) from None
    if isinstance(v, numbers.Integral) and not isinstance(v, bool) and (v == -1 or v >= 1):
        return int(v)
    if (
        isinstance(v, (list, tuple))
        and v
        and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in v)
    ):
        return [int(i) for i in v]
    raise OptionValueError(requirement)


def gpu_kind(accelerator: str) -> str | None:
    """'cuda' or 'mps' when ``accelerator`` (auto, gpu, cuda, mps) means a GPU present here, as
    Lightning sees it; None for the CPU."""
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    if accelerator in ("auto", "gpu", "cuda") and CUDAAccelerator.is_available():
        return "cuda"
    if accelerator in ("auto", "gpu", "mps") and MPSAccelerator.is_available():
        return "mps"
    return None


def torch_devices(accelerator: str = "auto", devices: int | str | list[int] = "auto") -> list[str]:
    """The torch devices that ``accelerator`` and ``devices`` (spelled as ``TrainConfig``'s)
    name on this machine: ``['cpu']``, ``['mps']`` or one ``'cuda:N'`` per GPU ('auto' or -1:
    every GPU; a count: the first ones; a list: those indices). The one place a device is decided
    outside Lightning (the benchmark's cells); a GPU that is not there is a ConfigError."""
    kind = gpu_kind(accelerator)
    if kind != "cuda":
        return [kind or "cpu"]
    n = torch.cuda.device_count()
    if devices in ("auto", -1):
        ids = list(range(n))
    elif isinstance(devices, int):
        ids = list(range(devices))
    else:
        ids = [int(i) for i in devices]
    missing = [i for i in ids if i >= n]
    if missing or not ids:
        raise ConfigError(
            f"devices={devices!r}: this machine has {n} CUDA device(s) (indices 0 to {n - 1})"
        )
    return [f"cuda:{i}" for i in ids]
