"""How the kernels are launched: 64-bit offsets on huge strided views, the grid within CUDA's limits, and the
device the launch goes to (CPU: Triton interpreter; the launch checks use fake CUDA tensors and record the launches
instead of running them)."""
from __future__ import annotations

import types

import pytest
import torch
import triton
from torch._subclasses.fake_tensor import FakeTensorMode

from scratchformers.fast.attention import flash_attention
from scratchformers.fast.layernorm import layer_norm
from scratchformers.fast.softmax import softmax
from scratchformers.kernels import flash_attention as flash_kernels
from scratchformers.kernels import layernorm as layernorm_kernels
from scratchformers.kernels import softmax as softmax_kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNEL_MODULES = (flash_kernels, layernorm_kernels, softmax_kernels)

# ---------------------------------------------------------------------------------------------------------------------
# Offsets past 2**31 elements
# ---------------------------------------------------------------------------------------------------------------------

ROW_STRIDE = 2**30 + 64  # row 2 of a view starts 2**31 + 128 elements into the buffer: past int32
SPAN = 2 * ROW_STRIDE + 4096


@pytest.fixture(scope="module")
def huge_buffer(tmp_path_factory) -> torch.Tensor:
    """A float16 buffer of 2**31 + ... elements (4 GiB) that costs almost nothing: on CPU a sparse file mapped into
    memory (only the pages the test touches are ever backed), on a GPU plain device memory."""
    if DEVICE == "cuda":
        return torch.zeros(SPAN, dtype=torch.float16, device=DEVICE)
    path = tmp_path_factory.mktemp("huge") / "buffer.bin"
    with open(path, "wb") as file:
        file.truncate(SPAN * 2)
    return torch.from_file(str(path), shared=True, size=SPAN, dtype=torch.float16)


def strided_view(buffer: torch.Tensor, shape: tuple[int, ...], offset: int, seed: int) -> torch.Tensor:
    """A view of ``shape`` whose second-to-last dim has ROW_STRIDE (the others packed), filled with random values."""
    strides, step = [0] * len(shape), 1
    for dim in (len(shape) - 1, *range(len(shape) - 3, -1, -1)):
        strides[dim], step = step, step * shape[dim]
    strides[-2] = ROW_STRIDE
    assert step <= 4096, "the packed dims must fit between two rows"
    view = buffer.as_strided(shape, strides, offset)
    view.copy_(torch.randn(shape, generator=torch.Generator().manual_seed(seed)))
    return view


def outputs_and_grads(fn, inputs: list[torch.Tensor], grad_out: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out] + [t.grad for t in leaves]


def assert_views_match_copies(fn, views: list[torch.Tensor], grad_out: torch.Tensor) -> None:
    """fn on the huge-strided views equals fn on contiguous copies of them, bit for bit (forward and gradients)."""
    got = outputs_and_grads(fn, views, grad_out)
    want = outputs_and_grads(fn, [v.contiguous() for v in views], grad_out.contiguous())
    for g, w in zip(got, want):
        assert torch.equal(g, w)


def test_attention_reads_rows_past_2_to_the_31(huge_buffer):
    """q, k, v and dO as views whose last row lies 2**31 + 128 elements past the first (as a model's c_attn split
    gives at long context), forward and backward, causal with padding."""
    shape = (1, 2, 3, 16)  # (B, H, T, D); packed (B, H, D) take 32 elements per row
    q, k, v, grad_out = (strided_view(huge_buffer, shape, 32 * i, seed=i) for i in range(4))
    mask = torch.tensor([[1, 1, 0]], device=DEVICE)
    assert_views_match_copies(lambda q, k, v: flash_attention(q, k, v, causal=True, attention_mask=mask),
                              [q, k, v], grad_out)


def test_row_kernels_read_rows_past_2_to_the_31(huge_buffer):
    x, grad_out = (strided_view(huge_buffer, (3, 16), 128 + 16 * i, seed=10 + i) for i in range(2))
    weight, bias = (torch.randn(16, generator=torch.Generator().manual_seed(i)).to(DEVICE) for i in (20, 21))
    assert_views_match_copies(lambda x, w, b: layer_norm(x, w, b), [x, weight, bias], grad_out)
    assert_views_match_copies(softmax, [x], grad_out)


# ---------------------------------------------------------------------------------------------------------------------
# Grid and device, recorded on fake CUDA tensors
# ---------------------------------------------------------------------------------------------------------------------

class Launches:
    """Stands in for every kernel of the kernel modules and for ``torch.cuda.device``: records each launch's grid
    (evaluated for 16-wide blocks) and the CUDA device index active when it was launched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records: list[tuple[str, tuple[int, ...], int | None]] = []
        self.active: list[int | None] = []
        launches = self

        class Device:
            def __init__(self, device):
                self.index = torch.device(device).index

            def __enter__(self):
                launches.active.append(self.index)

            def __exit__(self, *exc):
                launches.active.pop()

        monkeypatch.setattr(torch.cuda, "device", Device)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda device: types.SimpleNamespace(multi_processor_count=132))
        for module in KERNEL_MODULES:
            for name, value in vars(module).items():
                if isinstance(value, triton.runtime.KernelInterface):
                    monkeypatch.setattr(module, name, self.kernel(name))

    def kernel(self, name: str):
        launches = self

        class Kernel:
            def __getitem__(self, grid):
                def launch(*args, **kwargs):
                    evaluated = grid({"BLOCK_M": 16, "BLOCK_N": 16, **kwargs}) if callable(grid) else grid
                    launches.records.append((name, tuple(evaluated), launches.active[-1] if launches.active else None))
                return launch

        return Kernel()


def launch_everything(device: str, B: int, H: int, T: int) -> None:
    """Every host entry point of the kernels once (attention forward and backward, LayerNorm, softmax)."""
    with FakeTensorMode():
        q, k, v, out, do = (torch.empty(B, H, T, 16, device=device) for _ in range(5))
        lse = torch.empty(B, H, T, device=device)
        flash_kernels.flash_attention_forward(q, k, v, None, True, 0.25)
        flash_kernels.flash_attention_backward(do, q, k, v, out, lse, None, True, 0.25)
        x, w = torch.empty(4, 32, device=device), torch.empty(32, device=device)
        mean = torch.empty(4, device=device)
        layernorm_kernels.layer_norm_forward(x, w, w, 1e-5)
        layernorm_kernels.layer_norm_backward(x, x, w, mean, mean)
        softmax_kernels.softmax_backward(x, softmax_kernels.softmax_forward(x))


def test_every_kernel_launches_on_its_inputs_device(monkeypatch):
    """Tensors on cuda:1 while cuda:0 is current: each launch happens inside ``torch.cuda.device(cuda:1)``."""
    launches = Launches(monkeypatch)
    launch_everything("cuda:1", B=1, H=2, T=5)
    assert len(launches.records) == 8
    assert {device for _, _, device in launches.records} == {1}, launches.records


def test_batch_times_heads_is_not_limited_by_a_65535_grid_axis(monkeypatch):
    """B · H = 70,000 heads: every grid axis but the first stays within CUDA's 65,535 (the first allows 2**31 - 1)."""
    launches = Launches(monkeypatch)
    launch_everything("cuda:0", B=7, H=10_000, T=5)
    for name, grid, _ in launches.records:
        assert grid[0] <= 2**31 - 1 and all(n <= 65_535 for n in grid[1:]), (name, grid)
    assert ("_attn_fwd", (70_000,), 0) in launches.records


@pytest.mark.gpu
def test_more_heads_than_a_65535_grid_axis_on_gpu():
    q = torch.randn(2, 40_000, 3, 16, device="cuda", dtype=torch.float16, requires_grad=True)
    out = flash_attention(q, q, q, causal=True)
    out.sum().backward()
    want = torch.nn.functional.scaled_dot_product_attention(q.float(), q.float(), q.float(), is_causal=True)
    torch.testing.assert_close(out.float(), want, atol=2e-3, rtol=0)


@pytest.mark.gpu
def test_tensors_on_a_second_gpu():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    q = torch.randn(1, 2, 33, 64, device="cuda:1", dtype=torch.float16)
    x = torch.randn(7, 768, device="cuda:1")
    with torch.cuda.device(0):
        out = flash_attention(q, q, q, causal=True)
        y = layer_norm(x, torch.ones(768, device="cuda:1"), None)
        p = softmax(x)
    torch.testing.assert_close(out.float(), torch.nn.functional.scaled_dot_product_attention(
        q.float(), q.float(), q.float(), is_causal=True), atol=2e-3, rtol=0)
    torch.testing.assert_close(y, torch.nn.functional.layer_norm(x, (768,)), atol=1e-4, rtol=0)
    torch.testing.assert_close(p, torch.softmax(x, -1), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------
# Fixed tiles instead of autotuning (for a tile-by-tile mirror of the kernels)
# ---------------------------------------------------------------------------------------------------------------------

def assert_fp32_close(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    """Equal up to float32 rounding: other tiles sum in another order (a few ulps of the largest value)."""
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=0, atol=8 * torch.finfo(torch.float32).eps * max(w.abs().max(), 1))


@pytest.mark.parametrize("block_m,block_n", [(16, 16), (32, 16), (16, 32), (64, 32)])
def test_attention_with_fixed_tiles_matches_the_autotuned_kernels(block_m, block_n):
    gen = torch.Generator().manual_seed(block_m + block_n)
    q, k, v, do = (torch.randn(2, 2, T, 32, generator=gen).to(DEVICE) for T in (37, 45, 45, 37))
    lens = torch.tensor([45, 30], dtype=torch.int32, device=DEVICE)
    tuned = flash_kernels.flash_attention_forward(q, k, v, lens, True, 0.2)
    fixed = flash_kernels.flash_attention_forward(q, k, v, lens, True, 0.2, block_m=block_m, block_n=block_n)
    assert_fp32_close(list(fixed), list(tuned))
    args = (do, q, k, v, *tuned, lens, True, 0.2)
    assert_fp32_close(flash_kernels.flash_attention_backward(*args, block_m=block_m, block_n=block_n),
                      flash_kernels.flash_attention_backward(*args))


@pytest.mark.parametrize("block_m,num_programs", [(1, 1), (2, 5), (8, 2)])
def test_row_kernels_with_fixed_tiles_match_the_tuned_ones(block_m, num_programs):
    gen = torch.Generator().manual_seed(block_m)
    x, dy = (torch.randn(13, 40, generator=gen).to(DEVICE) for _ in range(2))
    w, b = (torch.randn(40, generator=gen).to(DEVICE) for _ in range(2))
    tuned = layernorm_kernels.layer_norm_forward(x, w, b, 1e-5)
    assert_fp32_close(layernorm_kernels.layer_norm_forward(x, w, b, 1e-5, block_m=block_m), tuned)
    stats = tuned[1:]
    assert_fp32_close(layernorm_kernels.layer_norm_backward(dy, x, w, *stats, block_m=block_m,
                                                            num_programs=num_programs),
                      layernorm_kernels.layer_norm_backward(dy, x, w, *stats))
    y = softmax_kernels.softmax_forward(x)
    assert_fp32_close([softmax_kernels.softmax_forward(x, block_m=block_m)], [y])
    assert_fp32_close([softmax_kernels.softmax_backward(dy, y, block_m=block_m)],
                      [softmax_kernels.softmax_backward(dy, y)])


def test_fixed_tiles_are_checked():
    x = torch.randn(2, 2, 4, 16, device=DEVICE)
    with pytest.raises(ValueError, match="both block_m and block_n"):
        flash_kernels.flash_attention_forward(x, x, x, None, False, 0.25, block_m=16)
    with pytest.raises(ValueError, match="power of two >= 16"):
        flash_kernels.flash_attention_forward(x, x, x, None, False, 0.25, block_m=8, block_n=16)
    with pytest.raises(ValueError, match="power of two >= 1"):
        softmax_kernels.softmax_forward(x, block_m=3)
    with pytest.raises(ValueError, match="num_programs"):
        layernorm_kernels.layer_norm_backward(x, x, torch.ones(16), x[0, 0, :, 0], x[0, 0, :, 0], num_programs=0)
