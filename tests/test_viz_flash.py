"""The flash attention figure (reference/viz.py: plot_flash_attention) and ``scratchformers viz --flash``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_viz import PNG_MAGIC, run_cli  # first: it skips itself, and so this file, where seaborn is missing

from scratchformers.reference.np_attention import attention_forward
from scratchformers.reference.np_flash_attention import LOG2E
from scratchformers.reference.viz import online_softmax_estimates, plot_flash_attention


def test_figure_is_written_with_its_three_panels(tmp_path: Path) -> None:
    path = tmp_path / "flash.png"
    figure, trace = plot_flash_attention(Tq=24, Tk=40, block_m=8, block_n=8, key_len=33, path=path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    titles = [ax.get_title() for ax in figure.axes]
    assert any("schedule" in t for t in titles) and any("Online softmax" in t for t in titles)
    assert (trace.Tq, trace.Tk, trace.block_m, trace.block_n) == (24, 40, 8, 8)
    # keys 32-39 hold one real key (32), seen by queries 16-23 only (causal, bottom-right: query i sits at i + 16)
    assert trace.schedule()[:, -1].tolist() == [trace.SKIPPED, trace.SKIPPED, trace.MASKED]


@pytest.mark.parametrize("causal, key_len", [(True, None), (False, 21), (True, 30)])
def test_online_estimates_are_softmaxes_of_the_keys_seen_and_end_at_the_true_softmax(causal, key_len):
    rng = np.random.default_rng(0)
    Tq, Tk, D = 12, 30, 4
    q, k, v = (rng.standard_normal((1, 1, T, D)) for T in (Tq, Tk, Tk))
    from scratchformers.reference.np_flash_attention import flash_attention_forward as flash_forward

    lens = None if key_len is None else np.array([key_len])
    _, _, trace = flash_forward(q, k, v, lens, causal, 0.5, block_m=4, block_n=7, return_trace=True)
    mask = None if key_len is None else (np.arange(Tk) < key_len)[None].astype(int)
    _, weights, _ = attention_forward(q * 0.5 * D**0.5, k, v, causal, mask)  # attention_forward scales by 1/sqrt(D)
    for row in range(Tq):
        scores = (q[0, 0, row] @ k[0, 0].T) * 0.5 * LOG2E
        estimates = online_softmax_estimates(trace, scores, row)
        assert np.allclose(estimates.sum(-1), 1.0, atol=1e-12)  # a distribution over the keys seen so far
        assert np.allclose(estimates[-1], weights[0, 0, row], atol=1e-12)


def test_cli_flash(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "flash.png"
    assert run_cli("--flash", "--lengths", "40", "72", "--blocks", "8", "16", "--key-len", "60", "--out", str(out)) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "13 unmasked, 5 masked, 7 skipped key blocks" in capsys.readouterr().out
    assert run_cli("--flash", "--no-causal", "--lengths", "5", "9", "--out", str(out)) == 0
    assert "0 unmasked, 1 masked, 0 skipped" in capsys.readouterr().out  # one block of 16 over 9 keys: masked


@pytest.mark.parametrize("argv, message", [
    (("--key-len", "99"), "key_len"),
    (("--blocks", "0", "16"), "block sizes"),
    (("--row", "48"), "row"),
])
def test_cli_flash_errors_are_one_line(argv, message, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("--flash", *argv, "--out", str(tmp_path / "x.png")) == 1
    err = capsys.readouterr().err
    assert err.startswith("scratchformers viz: error: ") and message in err and err.count("\n") == 1
