"""bf16 autocast at float32 speed on CPUs without bf16 instructions (issue 7).

The study's updates and the toy models' pretraining autocast their matmuls to bfloat16 (`mtalign.precision`,
`mtalign.toyworld`): on a CPU with AVX512-BF16 or AMX that multiplies 4.5 times faster than float32. On a CPU
without them, which is most laptops and some cloud machines (this project's build machine on some days), torch
emulates the bf16 matmul and it runs about 6 times *slower* than float32 (measured here: 17 against 115 GFLOP/s on the
toy model's shapes, one thread), so the speed-up turns into a 2-3x slow-down of every run and model build.

`install()` registers, for torch's CPU autocast only, kernels that compute the same thing a bf16 matmul computes:
round both operands to bfloat16, multiply them in float32 (a product of two bf16 numbers is exact in float32, so the
only rounding is the float32 accumulation, which a native bf16 kernel does too), and round the result to bfloat16.
Autograd sees the roundings, so the backward pass gets bf16-rounded gradients as under native autocast, again
accumulated in float32. Results differ from a native kernel's only in summation order, as two native kernels (AVX512-
BF16 and AMX) differ from each other; the dtypes every later operation sees are autocast's own.

It changes nothing on a CPU that has bf16 instructions (`native()`), nor outside autocast, nor on a GPU. The command
line and the notebooks install it at start; `kernel()` names the kernel in use, and every run records it.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 CPUs that multiply bfloat16 natively
_library = None  # the torch.library registration, kept alive while installed


def _cpuinfo_field(name: str, cpuinfo: Path | str = "/proc/cpuinfo") -> str | None:
    """The first CPU's `name` line of /proc/cpuinfo (Linux), or None where there is none."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=1)
def cpu_flags(cpuinfo: Path | str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags (Linux x86), or None where they cannot be read (other systems)."""
    flags = _cpuinfo_field("flags", cpuinfo)
    return None if flags is None else frozenset(flags.split())


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform module says."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_kind() -> str:
    """The kind of CPU, as far as it decides a build's or a run's numbers: its model and whether it multiplies bf16
    natively (runs record it; toy models built on two kinds differ: README, Cost of the toy study)."""
    return f"{cpu_model()}; bf16 instructions: {native()}"


def native(flags: frozenset[str] | None = None) -> bool | None:
    """Whether this CPU multiplies bf16 natively: True, False, or None where unknown (not a Linux x86 CPU)."""
    flags = cpu_flags() if flags is None else flags
    if flags is None or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    return any(flag in flags for flag in BF16_FLAGS)


def kernel() -> str:
    """Which kernel computes autocast's bf16 matmuls on this CPU, as a run records it."""
    if _library is not None:
        return "float32 accumulation of bf16-rounded operands (mtalign.cpu_bf16: no bf16 instructions)"
    has = native()
    return {True: "native bf16 instructions", False: "torch's emulation (no bf16 instructions)",
            None: "torch's default (CPU bf16 support unknown)"}[has]


def install(flags: frozenset[str] | None = None) -> bool:
    """Register the float32-speed bf16 kernels for CPU autocast where the CPU has no bf16 instructions. Returns
    whether they are installed (now or before); idempotent."""
    global _library
    if _library is not None:
        return True
    if native(flags) is not False:
        return False
    import warnings

    import torch

    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():  # "Overriding a previously registered kernel": autocast's own, on purpose
        warnings.simplefilter("ignore", UserWarning)
        for name, fn in (("linear", _linear), ("matmul", _matmul), ("mm", _mm), ("bmm", _bmm)):
            library.impl(name, fn, "AutocastCPU")
    _library = library
    return True


def _rounded(t):
    """`t` rounded to bfloat16 and held in float32 (autograd rounds its gradient the same way); autocast casts only
    float32, float16 and bfloat16 tensors, and so does this."""
    import torch

    if t is None or t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return t
    return t.to(torch.bfloat16).to(torch.float32)


def _float32(op):
    """`op` on bf16-rounded operands in float32, its result rounded to bf16: autocast's bf16 op, float32 speed."""

    @functools.wraps(op)
    def kernel(*tensors):
        import torch

        dtype = torch.get_autocast_dtype("cpu")
        if dtype != torch.bfloat16:  # CPU autocast to another dtype: autocast's own cast, then the op
            with _no_autocast():
                return op(*(t.to(dtype) if t is not None and t.dtype in (torch.float32, torch.float16, torch.bfloat16)
                            else t for t in tensors))
        with _no_autocast():
            return op(*(_rounded(t) for t in tensors)).to(torch.bfloat16)

    return kernel


def _no_autocast():
    import torch

    return torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU))


def _op(name):
    import torch

    return getattr(torch.ops.aten, name).default


_linear = _float32(lambda x, w, b=None: _op("linear")(x, w, b))
_matmul = _float32(lambda a, b: _op("matmul")(a, b))
_mm = _float32(lambda a, b: _op("mm")(a, b))
_bmm = _float32(lambda a, b: _op("bmm")(a, b))
