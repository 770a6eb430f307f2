"""SIGTERM / SIGINT (cluster preemption, Ctrl-C): finish the step, checkpoint, exit non-zero; and the
commands a stage prints to go on (resume it, or run the next stage).

The handler only sets a flag; the loop checks it between steps, so a checkpoint is never written
from inside a signal handler. With several processes the flag is agreed on at the loop's synchronisation
points (summed over processes: any process that saw a signal stops them all), so all of them stop at the
same step.
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import torch

from ..config import Config

HANDLED = (signal.SIGTERM, signal.SIGINT)


class PreemptionGuard:
    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means: stop now, no checkpoint
        self.signum = signum
        print(f"\nreceived {signal.Signals(signum).name}: finishing this step, then checkpointing", file=sys.stderr)

    def __enter__(self) -> PreemptionGuard:
        self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def should_stop(self, accelerator, sync_point: bool) -> bool:
        """Locally at every step with one process; agreed across processes at synchronisation points."""
        if accelerator.num_processes == 1:
            return self.signum is not None
        if not sync_point:
            return False
        flag = torch.tensor([0 if self.signum is None else self.signum], device=accelerator.device)
        agreed = int(accelerator.reduce(flag, reduction="sum").item())
        if agreed and self.signum is None:
            self.signum = signal.SIGTERM
        return agreed > 0


REPLACED = ("--resume_from_checkpoint", "--mixed_precision")


def resume_command(
    num_processes: int = 1, mixed_precision: str = "no", argv: list[str] | None = None, cpu: bool = False
) -> str:
    """The command line that continues this run on this machine: the same arguments, the same process count,
    device and precision (`sys.argv` does not show what was given to `accelerate launch`, and a default
    accelerate config may say otherwise), and `--resume_from_checkpoint latest`."""
    args = list(sys.argv if argv is None else argv)
    script, rest = args[0], args[1:]
    kept, skip = [], False
    for arg in rest:
        if skip:
            skip = False
            continue
        if arg in REPLACED:
            skip = True
            continue
        if arg.startswith(tuple(f"{flag}=" for flag in REPLACED)):
            continue
        kept.append(arg)
    resume = ["--mixed_precision", mixed_precision, "--resume_from_checkpoint", "latest"]
    return shlex.join([*launcher(num_processes, cpu), script, *kept, *resume])


def launcher(num_processes: int, cpu: bool) -> list[str]:
    """`accelerate launch` with this run's process count and device, whatever the default accelerate config says."""
    if num_processes > 1:  # several CPU processes: only the environment variable gives them one process group
        command = ["ACCELERATE_USE_CPU=1"] * cpu + ["accelerate", "launch", "--multi_gpu"]
    else:
        command = ["accelerate", "launch"] + ["--cpu"] * cpu
    return [*command, "--num_processes", str(num_processes)]


def next_command(config: Config, num_processes: int = 1, mixed_precision: str = "no", cpu: bool = True) -> str:
    """What a user runs after this stage: stage distorted from these weights, on the same processes, or the export."""
    t = config.train
    if t.stage == "clear":
        # What stage clear was given that decides the data, the held-back images, the network, its loss and
        # the batch stream: stage distorted would otherwise fall back to its YAML's.
        flat = {key.split(".")[-1]: value for key, value in config.flat().items()}
        defaults = {key.split(".")[-1]: value for key, value in Config().flat().items()}
        shared = ("output_dir", "train_data", "val_data", "val_fraction", "data_layout", "seed", "preset")
        shared += ("reconstruction", "kl_weight", "loss_reduction", "global_batch_size")
        flags = [f"--{key}={flat[key]}" for key in shared if flat[key] != defaults[key]]
        flags.append(f"--mixed_precision={mixed_precision}")
        return shlex.join([*launcher(num_processes, cpu), "launch/train.py", "--stage", "distorted", *flags])
    return f"python -m export.onnx --checkpoint {config.run_dir} --output {Path(t.output_dir) / 'model.onnx'}"
