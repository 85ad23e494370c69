"""The float32-speed bf16 autocast kernels (mtalign/cpu_bf16.py): installed only where the CPU has no bf16
instructions, and computing what torch's own bf16 ops compute, to float32 summation order, forward and backward."""

import pytest
import torch
import torch.nn.functional as F

from mtalign import cpu_bf16

NO_BF16 = frozenset({"fpu", "avx2", "avx512f", "avx512bw"})
BF16 = NO_BF16 | {"avx512_bf16"}


def test_native_reads_the_cpu_flags():
    assert cpu_bf16.native(NO_BF16) is False
    assert cpu_bf16.native(BF16) is True
    assert cpu_bf16.native(NO_BF16 | {"amx_bf16"}) is True


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_bf16.cpu_flags.__wrapped__(info) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cpu_bf16.cpu_flags.__wrapped__(tmp_path / "missing") is None


def test_nothing_is_installed_on_a_cpu_with_bf16_instructions(monkeypatch):
    monkeypatch.setattr(cpu_bf16, "_library", None)
    assert cpu_bf16.install(BF16) is False
    assert cpu_bf16._library is None


def _bf16_reference(x, w, b=None):
    """torch's own bf16 linear on bf16 operands (autocast's computation, whatever kernel computes it)."""
    return F.linear(x.to(torch.bfloat16), w.to(torch.bfloat16), None if b is None else b.to(torch.bfloat16))


def _close_in_bf16(a, b, ulps=2):
    # results agree to a bf16 rounding or two (the float32 sums' order differs); bf16 has 8 bits of mantissa
    scale = b.float().abs().amax().clamp(min=1e-12)
    assert ((a.float() - b.float()).abs().amax() / scale).item() <= ulps * 2 ** -8


@pytest.fixture
def installed():
    """The kernels installed: conftest installs them where the CPU has no bf16 instructions; elsewhere they are
    installed for the test and removed after it, so the other tests keep torch's native kernels there."""
    forced = cpu_bf16._library is None and cpu_bf16.install(NO_BF16)
    yield cpu_bf16
    if forced:
        cpu_bf16._library._destroy()
        cpu_bf16._library = None


def test_autocast_ops_give_bf16_results_equal_to_torchs_own(installed):
    torch.manual_seed(0)
    x, w, b = torch.randn(64, 32), torch.randn(48, 32), torch.randn(48)
    a3, b3 = torch.randn(4, 16, 8), torch.randn(4, 8, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = {"linear": F.linear(x, w, b), "matmul": torch.matmul(a3, b3), "mm": torch.mm(x, w.T),
               "bmm": torch.bmm(a3, b3), "@": x @ w.T}
    assert all(v.dtype == torch.bfloat16 for v in out.values()), {k: v.dtype for k, v in out.items()}
    _close_in_bf16(out["linear"], _bf16_reference(x, w, b))
    _close_in_bf16(out["matmul"], torch.matmul(a3.bfloat16(), b3.bfloat16()))
    _close_in_bf16(out["bmm"], torch.bmm(a3.bfloat16(), b3.bfloat16()))
    _close_in_bf16(out["mm"], x.bfloat16() @ w.T.bfloat16())
    _close_in_bf16(out["@"], out["mm"], ulps=0)


def test_gradients_have_autocasts_dtypes_and_values(installed):
    """Weights' gradients come back float32 and an activation's bf16, as under torch's own autocast, with the values
    of the same computation done in torch's bf16 ops by hand."""
    torch.manual_seed(1)
    x = torch.randn(32, 16, requires_grad=True)
    w1, w2 = torch.randn(24, 16, requires_grad=True), torch.randn(8, 24, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = F.linear(x, w1)
        h.retain_grad()
        y = F.linear(F.silu(h), w2)
    y.float().square().sum().backward()
    assert (x.grad.dtype, w1.grad.dtype, h.grad.dtype) == (torch.float32, torch.float32, torch.bfloat16)

    xr, w1r, w2r = (t.detach().clone().requires_grad_() for t in (x, w1, w2))
    y_ref = F.linear(F.silu(F.linear(xr.bfloat16(), w1r.bfloat16())), w2r.bfloat16())
    y_ref.float().square().sum().backward()
    _close_in_bf16(y, y_ref)
    for ours, theirs in ((x.grad, xr.grad), (w1.grad, w1r.grad), (w2.grad, w2r.grad)):
        _close_in_bf16(ours, theirs, ulps=4)


def test_outside_autocast_and_in_float32_nothing_changes(installed):
    torch.manual_seed(2)
    x, w = torch.randn(16, 8), torch.randn(4, 8)
    assert torch.equal(F.linear(x, w), x @ w.T)
    assert F.linear(x, w).dtype == torch.float32


def test_a_run_records_which_kernel_computed_its_bf16_matmuls():
    from mtalign import runinfo

    env = runinfo.environment()
    assert env["cpu_bf16"] == cpu_bf16.kernel() and env["cpu"] == cpu_bf16.cpu_kind()
    assert f"bf16 instructions: {cpu_bf16.native()}" in env["cpu"]


def test_installed_kernels_are_the_ones_cpu_autocast_dispatches_to(installed):
    for op in ("linear", "matmul", "mm", "bmm"):
        active = [line for line in torch._C._dispatch_dump(f"aten::{op}").splitlines()
                  if line.startswith("AutocastCPU:")]
        assert len(active) == 1 and "mtalign/cpu_bf16.py" in active[0], (op, active)
    assert cpu_bf16.kernel().startswith("float32 accumulation")
