"""Where a run's arithmetic happens: `train.device` → a torch device.

    auto     cuda:0 when torch sees a CUDA GPU, else cpu (the default)
    cpu      the CPU, always
    cuda     the first CUDA GPU; cuda:N the N-th

Data are read, tokenised, scaled and batched on the CPU; each batch moves to the device just
before the model sees it, and predictions, checkpoints and resume states come back to the CPU,
so a run started on one device resumes on another (`train.device` may change on `--resume`).
Results are repeatable on one device (`seed_everything` asks for deterministic kernels) but not
bit-identical across devices: report the device with the numbers (metrics.json has it). On a
CUDA GPU, float32 matrix products use TF32 tensor cores (torch's "high" matmul precision, 10-bit
mantissa products with float32 sums), the usual setting for training on Ampere and later GPUs.
"""

from __future__ import annotations

from itertools import chain

import torch

from mimsa.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """Return the torch device that `train.device` names (see the module docstring).

    Raises `ConfigError` (one line) for a CUDA device torch cannot see, before anything runs.
    """
    text = str(name)
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = 0 if text == "cuda" else text.split(":", 1)[1]
        if not str(index).isdigit():
            raise ConfigError(f"train.device '{name}' is not a device; use auto, cpu, cuda or "
                              f"cuda:N")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(index) >= count:
            seen = f"it sees {count} GPU(s)" if count else (
                f"this torch {torch.__version__} sees no CUDA GPU")
            raise ConfigError(f"train.device '{name}': {seen}; set train.device=auto or cpu, "
                              f"or install a CUDA build of torch on a machine with a GPU")
        return torch.device(f"cuda:{int(index)}")
    raise ConfigError(f"train.device '{name}' is not a device; use auto, cpu, cuda or cuda:N")


def use_device(device: torch.device) -> None:
    """Prepare this process to train on `device`: on a CUDA GPU, TF32 matrix products (see the
    module docstring). Called once by a run that trains, not by config checks."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")


def describe_device(device: torch.device) -> str:
    """Return e.g. 'cpu' or 'cuda:0 (NVIDIA H200)' for metrics and notes."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def module_device(module: torch.nn.Module) -> torch.device:
    """Return the device of `module`'s first parameter or buffer (cpu when it has none)."""
    first = next(chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if first is None else first.device
