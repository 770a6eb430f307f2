"""Which precision a run trains in: on the CPU, bf16 only where the CPU computes bf16 natively.

`configs/accelerate/cpu.yaml` asks for bf16, and a YAML file cannot ask the CPU what it can do. On a CPU
with bf16 instructions (x86 AVX-512 BF16 or AMX, Arm's BF16 extension) oneDNN runs the convolutions in
bf16 and autocast makes training faster; elsewhere bf16 is emulated through fp32 and only loses
precision and speed. So a CPU run given bf16 on a CPU without native bf16 trains in fp32 instead, and
every CPU run says in one log line which it got and why.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

import torch
from accelerate.utils import parse_flag_from_env

logger = logging.getLogger(__name__)


def cpu_bf16_instructions() -> str | None:
    """The name of this CPU's native bf16 instructions, or None when it has none."""
    cpu = getattr(torch, "cpu", None)
    if cpu is not None:  # torch's own checks (private, hence guarded): the instructions oneDNN would use
        if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
            return "AMX"
        if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
            return "AVX-512 BF16"
    flags = cpuinfo_flags()
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("bf16", "Arm BF16")):
        if flag in flags and (flag != "bf16" or platform.machine() in ("aarch64", "arm64")):
            return name
    return None


def cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags on Linux (`flags` on x86, `Features` on Arm); empty elsewhere."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def trains_on_cpu() -> bool:
    """What the Accelerator about to be built will pick: the CPU when told to, or without an accelerator."""
    if parse_flag_from_env("ACCELERATE_USE_CPU"):
        return True
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return not (
        torch.cuda.is_available()
        or (mps is not None and mps.is_available())
        or (xpu is not None and xpu.is_available())
    )


def resolve_mixed_precision(requested: str | None) -> str:
    """The precision to build the Accelerator with: `requested` (None: what `accelerate launch` was given),
    except bf16 on a CPU without native bf16, which becomes fp32 ("no"). Logs one line for a CPU run."""
    precision = requested or os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if not trains_on_cpu():
        return precision
    if precision == "bf16":
        found = cpu_bf16_instructions()
        if found:
            logger.info("CPU training in bf16 autocast: this CPU has native bf16 (%s)", found)
            return "bf16"
        logger.warning("CPU training in fp32: bf16 was asked for, but this CPU has no native bf16 instructions")
        return "no"
    logger.info("CPU training in %s", "fp32" if precision == "no" else precision)
    return precision
