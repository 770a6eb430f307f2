"""Which precision a run trains in: on the CPU, bf16 where the CPU computes bf16 natively, else fp32.

`configs/accelerate/cpu.yaml` asks for bf16, and a YAML file cannot ask the CPU what it can do. On a CPU
with bf16 instructions (x86 AVX-512 BF16 or AMX, Arm's BF16 extension) oneDNN runs the convolutions in
bf16 and autocast makes training faster; elsewhere bf16 is emulated through fp32 and only loses
precision and speed. So bf16 given by `accelerate launch` (its config file or its own --mixed_precision)
to a CPU without native bf16 becomes fp32. The training script's own `--mixed_precision` (or a
config's `mixed_precision`, as `RUN_DIR/config.json` records it) is taken as it is: that is how a run
is repeated exactly elsewhere. Every CPU run says in one log line which precision it got and why.
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
    """The precision to build the Accelerator with: `requested` (the training config's) as it is, or with
    None what `accelerate launch` was given, bf16 becoming fp32 ("no") on a CPU without native bf16."""
    precision = requested or os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if not trains_on_cpu():
        return precision
    native = cpu_bf16_instructions() if precision == "bf16" else None
    if precision == "bf16" and native:
        logger.info("CPU training in bf16 autocast: this CPU has native bf16 (%s)", native)
    elif precision == "bf16" and requested:
        logger.warning("CPU training in bf16 autocast as asked, emulated: this CPU has no native bf16 (slower)")
    elif precision == "bf16":
        logger.warning("CPU training in fp32: accelerate asked for bf16, but this CPU has no native bf16")
        return "no"
    else:
        logger.info("CPU training in %s", "fp32" if precision == "no" else precision)
    return precision
