"""The exercises and their grader (``scratchformers check``): the library's own implementations pass, the shipped
stubs fail with "not implemented yet", correct solutions in another style pass, and every classic mistake in the
catalogue below fails with the hint written for it.

The mutants are learner-style files: the "other style" solution of the exercise (tests/exercises/other_style/) with
one mistake patched in, or a short file written with the mistake. The grader never sees their source: it finds the
mistake from what the code computes.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from scratchformers.exercises.checks import catalogue
from scratchformers.exercises.checks.core import Report, load_learner, run_checks
from scratchformers.train.cli import main

HERE = Path(__file__).resolve().parent / "exercises"
REFERENCE, OTHER_STYLE = HERE / "reference", HERE / "other_style"


def grade(name: str, path: Path) -> tuple[Report, str]:
    out = io.StringIO()
    exercise = catalogue.exercise(name)
    return run_checks(exercise, load_learner(exercise, path), out), out.getvalue()


@pytest.mark.parametrize("name", catalogue.ORDER)
def test_the_librarys_implementation_passes(name: str) -> None:
    report, out = grade(name, REFERENCE / f"{name}.py")
    assert report.ok, out


@pytest.mark.parametrize("name", catalogue.ORDER)
def test_a_correct_solution_in_another_style_passes(name: str) -> None:
    report, out = grade(name, OTHER_STYLE / f"{name}.py")
    assert report.ok, out


@pytest.mark.parametrize("name", catalogue.ORDER)
def test_the_stub_fails_with_not_implemented_yet(name: str) -> None:
    report, out = grade(name, catalogue.stub(name))
    assert report.not_implemented is not None and report.passed == 0, out
    assert "not implemented yet" in out and "Traceback" not in out


# ----------------------------------------------------------------------------------------------------------------------
# The catalogue of classic mistakes: (exercise, what is wrong, the mutant, the hint it must get)
# ----------------------------------------------------------------------------------------------------------------------
# A mutant is a patch of the exercise's other-style solution (or, with base="reference", of the library's solution in
# tests/exercises/reference/): (old, new) pairs, each old text replaced wherever it occurs; or a whole file. The hint
# it must get is named by the catalogued mistake the grader should recognise ("mistake: <start of its title>") or,
# for mistakes best explained by the check that catches them, by that check ("check: <start of its title>").

SOFTMAX = "import numpy as np\n\n\ndef softmax(x):\n    e = {e}\n    return e / {total}\n"
SOFTMAX_BACKWARD = "def softmax_backward(dy, y):\n    return {dx}\n"
ERF = "np.vectorize(__import__('math').erf)"


def mutant(exercise: str, what: str, edits: str | list[tuple[str, str]], expect: str, base: str = "other_style"):
    return pytest.param(exercise, edits, expect, base, id=f"{exercise}: {what}")


MUTANTS = [
    mutant("bpe", "pairs counted once per word", [("+= freq", "+= 1")], "mistake: each pair counted once per word"),
    mutant("bpe", "a set of pairs per word", [("        for i in range(len(symbols) - 1):\n"
                                               "            pairs[symbols[i], symbols[i + 1]] += freq",
                                               "        for a, b in set(zip(symbols, symbols[1:])):\n"
                                               "            pairs[a, b] += freq")],
           "mistake: a pair that occurs twice"),
    mutant("bpe", "merge by str.replace", [("    out = {}\n", "    return {w.replace(' '.join(pair), ''.join(pair)): "
                                            "f for w, f in vocab.items()}\n")],
           "mistake: merged by plain substring replacement"),
    mutant("bpe", "only the first occurrence merged", [("symbols[i + 1] == pair[1]:", "symbols[i + 1] == pair[1] "
                                                        "and pair[0] + pair[1] not in merged:")],
           "mistake: only the first occurrence"),
    mutant("bytebpe", "no pre-tokenizer split", [("regex.findall(GPT2_SPLIT_PATTERN, text)", "[text]")],
           "mistake: no split with GPT-2's pattern"),
    mutant("bytebpe", "split on whitespace only", [("regex.findall(GPT2_SPLIT_PATTERN, text)",
                                                    "regex.findall(r' ?\\S+|\\s+', text)")],
           "mistake: split on whitespace only"),
    mutant("bytebpe", "the leftmost pair first", [("best = min(range(len(scores)), key=scores.__getitem__)",
                                                   "best = next((i for i, s in enumerate(scores) if s != INF), 0)")],
           "mistake: the leftmost mergeable pair"),
    mutant("bytebpe", "characters, not bytes", [('[bytes([b]) for b in chunk.encode("utf-8")]',
                                                 '[c.encode("utf-8") for c in chunk]')],
           "mistake: BPE over characters"),
    mutant("bytebpe", "the re module", [("import regex\n", "import re as regex\n")], "check: 'Hello world'"),
    mutant("positional", "one exponent per pair, i/d", [("-np.arange(0, dim, 2) / dim", "-np.arange(0, dim, 2) / 2 "
                                                         "/ dim")], "mistake: exponent i/d for pair i"),
    mutant("positional", "one exponent per column, j/d", [(
        "    freq = np.power(10000.0, -np.arange(0, dim, 2) / dim)[None, :]\n"
        "    both = np.stack([np.sin(pos * freq), np.cos(pos * freq)], axis=-1)  # (L, ceil(d/2), 2)\n"
        "    return both.reshape(max_len, -1)[:, :dim]",
        "    angle = pos / 10000.0 ** (np.arange(dim) / dim)\n"
        "    return np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))")],
           "mistake: exponent j/d for column j"),
    mutant("positional", "sin and cos swapped", [("[np.sin(pos * freq), np.cos(pos * freq)]",
                                                  "[np.cos(pos * freq), np.sin(pos * freq)]")], "mistake: sin and cos"),
    mutant("positional", "not interleaved", [("axis=-1)", "axis=1)")], "mistake: all the sines first"),
    mutant("positional", "positions from 1", [("np.arange(max_len)[:, None]", "np.arange(1, max_len + 1)[:, None]")],
           "mistake: positions counted from 1"),
    mutant("softmax", "no max subtraction in a log-sum-exp", [("m = np.max(x, axis=-1, keepdims=True)", "m = 0.0")],
           "check: exact for large inputs"),
    mutant("softmax", "no max subtraction", SOFTMAX.format(e="np.exp(x)", total="e.sum(axis=-1, keepdims=True)"),
           "mistake: no max subtraction"),
    mutant("softmax", "the whole array's maximum", SOFTMAX.format(e="np.exp(x - np.max(x))",
                                                                  total="e.sum(axis=-1, keepdims=True)"),
           "mistake: the maximum of the whole array"),
    mutant("softmax", "over the first axis", [("axis=-1", "axis=0")], "mistake: normalised over the first axis"),
    mutant("softmax", "the whole array's sum", SOFTMAX.format(e="np.exp(x - x.max(axis=-1, keepdims=True))",
                                                              total="e.sum()"),
           "mistake: divided by the sum of the whole array"),
    mutant("softmax", "no keepdims", SOFTMAX.format(e="np.exp(x - x.max(axis=-1))", total="e.sum(axis=-1)"),
           "mistake: reduced axis dropped"),
    mutant("softmax", "float64 forced", [("    m = np.max(x", "    x = x.astype(np.float64)\n    m = np.max(x")],
           "check: returns x's shape and dtype"),
    mutant("softmax_backward", "only the diagonal", SOFTMAX_BACKWARD.format(dx="dy * y * (1 - y)"),
           "mistake: only the diagonal"),
    mutant("softmax_backward", "y missing in the sum",
           SOFTMAX_BACKWARD.format(dx="y * (dy - dy.sum(-1, keepdims=True))"), "mistake: y missing inside the sum"),
    mutant("softmax_backward", "arguments swapped", [("def softmax_backward(dy, y):", "def softmax_backward(y, dy):")],
           "mistake: the arguments swapped"),
    mutant("softmax_backward", "the sign flipped", [('return np.einsum("...ij,...i->...j", jacobian, dy)',
                                                     'return -np.einsum("...ij,...i->...j", jacobian, dy)')],
           "mistake: the sign flipped"),
    mutant("softmax_backward", "the whole array's sum", SOFTMAX_BACKWARD.format(dx="y * (dy - (y * dy).sum())"),
           "mistake: the sum taken over the whole array"),
    mutant("layernorm", "unbiased variance", [("np.var(x, axis=-1, keepdims=True)",
                                               "np.var(x, axis=-1, keepdims=True, ddof=1)")],
           "mistake: the unbiased variance"),
    mutant("layernorm", "eps outside the root", [("np.sqrt(np.var(x, axis=-1, keepdims=True) + eps)",
                                                  "np.sqrt(np.var(x, axis=-1, keepdims=True)) + eps")],
           "mistake: eps outside the square root"),
    mutant("layernorm", "beta forgotten", [(" + beta", "")], "mistake: beta forgotten"),
    mutant("layernorm", "over the first axis", [("axis=-1", "axis=0")], "mistake: normalised over the first axis"),
    mutant("layernorm", "eps ignored", [("+ eps)", "+ 1e-5)")], "mistake: the eps argument ignored"),
    mutant("layernorm_backward", "no mean(g) term", [("C * g - g.sum(-1, keepdims=True) - ", "C * g - ")],
           "mistake: dx without the -mean(g)"),
    mutant("layernorm_backward", "no x_hat term", [(" - x_hat * (g * x_hat).sum(-1, keepdims=True)", "")],
           "mistake: dx without the -x_hat"),
    mutant("layernorm_backward", "gamma missing", [("g = dy * gamma", "g = dy")], "mistake: g = dy"),
    mutant("layernorm_backward", "dgamma and dbeta swapped", [(
        "return dx, (rows * x_hat.reshape(-1, C)).sum(0), rows.sum(0)",
        "return dx, rows.sum(0), (rows * x_hat.reshape(-1, C)).sum(0)")], "mistake: dgamma and dbeta swapped"),
    mutant("layernorm_backward", "summed over the first axis only", [(
        "return dx, (rows * x_hat.reshape(-1, C)).sum(0), rows.sum(0)",
        "return dx, (dy * x_hat).sum(0), dy.sum(0)")], "mistake: dgamma and dbeta summed over the first axis"),
    mutant("layernorm_backward", "divided by rstd", [("dx = rstd / C * (", "dx = 1 / rstd / C * (")],
           "mistake: rstd used as the standard deviation"),
    mutant("gelu", "x^2 inside the tanh", [("np.power(x, 3))))", "np.power(x, 2))))")], "mistake: x^2 instead of x^3"),
    mutant("gelu", "the exact erf form", [("np.tanh(K * (x + 0.044715 * np.power(x, 3)))",
                                           f"{ERF}(x / np.sqrt(2))")], "mistake: the exact erf GELU"),
    mutant("gelu", "2/pi without the root", [("K = np.sqrt(2 / np.pi)", "K = 2 / np.pi")], "mistake: 2/pi instead"),
    mutant("gelu", "no product rule", [(" + 0.5 * x * sech2 * K * (1 + 3 * 0.044715 * x**2))", ")")],
           "mistake: the derivative of x * (...) without the product rule"),
    mutant("gelu", "du/dx without the 3", [("(1 + 3 * 0.044715 * x**2)", "(1 + 0.044715 * x**2)")],
           "mistake: du/dx without the 3"),
    mutant("gelu", "tanh' as 1 - t", [("sech2 = 1.0 / np.cosh(u) ** 2", "sech2 = 1.0 - np.tanh(u)")],
           "mistake: tanh' taken as 1 - t"),
    mutant("attention", "no 1/sqrt(D)", [(") / np.sqrt(D)", ")")], "mistake: scores not scaled by 1/sqrt(D)"),
    mutant("attention", "1/D", [(") / np.sqrt(D)", ") / D")], "mistake: scores scaled by 1/D"),
    mutant("attention", "the padding mask on the queries", [("[:, None, None, :] == 1)", "[:, None, :, None] == 1)")],
           "mistake: the padding mask applied to the queries"),
    mutant("attention", "the mask after the softmax", [("    scores = np.where(visible, scores, -np.inf)\n", ""),
                                                       ("    return np.einsum", "    weights = weights * visible\n"
                                                        "    return np.einsum")],
           "mistake: the mask applied after the softmax"),
    mutant("attention", "a query cannot see itself", [("k=Tk - Tq)", "k=Tk - Tq - 1)")],
           "mistake: causal mask off by one: a query cannot see its own key"),
    mutant("attention", "a query sees the next key", [("k=Tk - Tq)", "k=Tk - Tq + 1)")],
           "mistake: causal mask off by one: a query sees the next key"),
    mutant("attention", "causal aligned top-left", [("k=Tk - Tq)", "k=0)")], "mistake: causal mask aligned top-left"),
    mutant("attention", "no max subtraction", [("weights = np.exp(scores - row_max)", "weights = np.exp(scores)")],
           "mistake: the softmax without subtracting each row's maximum"),
    mutant("attention", "-1e9 instead of -inf", [("np.where(visible, scores, -np.inf)",
                                                  "np.where(visible, scores, -1e9)")],
           "mistake: hidden keys set to a large negative number"),
    mutant("multihead_attention", "no 1/sqrt(D)", [(") / math.sqrt(q.shape[-1])", ")")],
           "mistake: scores not scaled by 1/sqrt(D)"),
    mutant("multihead_attention", "causal aligned top-left", [(".triu(Tk - Tq + 1)", ".triu(1)")],
           "mistake: causal mask aligned top-left"),
    mutant("multihead_attention", "the mask after the softmax", [
        ("torch.softmax(scores.masked_fill(hidden, float(\"-inf\")), dim=-1).nan_to_num(0.0)",
         "torch.softmax(scores, dim=-1).masked_fill(hidden, 0.0)")], "mistake: the mask applied after the softmax"),
    mutant("multihead_attention", "dropout ignored", [("F.dropout(weights, dropout_p)", "weights")],
           "mistake: dropout_p ignored"),
    mutant("multihead_attention", "dropout not rescaled", [("F.dropout(weights, dropout_p)",
                                                            "F.dropout(weights, dropout_p) * (1 - dropout_p)")],
           "mistake: the kept weights not scaled"),
    mutant("multihead_attention", "weights after dropout", [(
        '    return torch.einsum("bhqk,bhkd->bhqd", F.dropout(weights, dropout_p), v), weights',
        '    weights = F.dropout(weights, dropout_p)\n'
        '    return torch.einsum("bhqk,bhkd->bhqd", weights, v), weights')],
           "mistake: the weights returned after dropout"),
    mutant("multihead_attention", "no gradient to q and k", [("scores.masked_fill(", "scores.detach().masked_fill(")],
           "check: autograd through your attention"),
    mutant("gpt2_forward", "post-norm", [
        ('linear(ln(x, p + "ln_1"), p + "attn.c_attn")', 'linear(x, p + "attn.c_attn")'),
        ('x = x + linear(y, p + "attn.c_proj")', 'x = ln(x + linear(y, p + "attn.c_proj"), p + "ln_1")'),
        ('linear(ln(x, p + "ln_2"), p + "mlp.c_fc")', 'linear(x, p + "mlp.c_fc")'),
        ('x = x + linear(h, p + "mlp.c_proj")', 'x = ln(x + linear(h, p + "mlp.c_proj"), p + "ln_2")')],
           "mistake: LayerNorm after the residual addition"),
    mutant("gpt2_forward", "no ln_f", [('ln(x, "transformer.ln_f")', "x")], "mistake: the final LayerNorm"),
    mutant("gpt2_forward", "no positions", [(' + sd["transformer.wpe.weight"][:T]', "")],
           "mistake: no position embeddings"),
    mutant("gpt2_forward", "not causal", [("        s = np.where(future, -np.inf, s)\n", "")],
           "mistake: attention not causal"),
    mutant("gpt2_forward", "heads by a straight reshape", [(
        "        q, k, v = (t.reshape(B, T, num_heads, D) for t in (q, k, v))",
        "        q, k, v = (t.reshape(B, num_heads, T, D).transpose(0, 2, 1, 3) for t in (q, k, v))")],
           "mistake: heads split by reshaping"),
    mutant("gpt2_forward", "the exact erf GELU", [("np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3))",
                                                   f"{ERF}(h / np.sqrt(2))")], "mistake: the exact erf GELU"),
    mutant("online_softmax", "the running sum not rescaled", [("total * np.exp(m - m_new)", "total")],
           "mistake: the running sum not rescaled", base="reference"),
    mutant("online_softmax", "rescaled the wrong way", [("np.exp(m - m_new)", "np.exp(m_new - m)")],
           "mistake: the running sum rescaled by exp(m_new - m_old)", base="reference"),
    mutant("online_softmax", "the partial last tile skipped", [("range(0, x.shape[1], block_n)",
                                                                "range(0, x.shape[1] - block_n + 1, block_n)")],
           "mistake: the last, partial tile skipped"),
    mutant("online_softmax", "a whole row at once", [("    out = np.zeros(x.shape)\n", "    out = np.zeros(x.shape)\n"
                                                      "    everything = np.exp(x - x.max())\n")],
           "check: holds one tile at a time"),
    mutant("triton_softmax", "padding loaded as 0", [('other=float("-inf")', "other=0.0")],
           "check: matches torch.softmax"),
    mutant("triton_softmax", "no max subtraction", [("num = tl.exp(row - top)", "num = tl.exp(row)")],
           "check: large inputs"),
    mutant("triton_softmax", "NaN for an all -inf row", [('    top = tl.where(top == float("-inf"), 0.0, top)\n', "")],
           "check: a row that is all -inf"),
    mutant("triton_softmax", "rows assumed N apart", [("X + r * stride_x + cols", "X + r * N + cols")],
           "check: rows that are not contiguous"),
]


def source_of(name: str, edits: str | list[tuple[str, str]], base: str) -> str:
    if isinstance(edits, str):
        return edits
    source = (HERE / base / f"{name}.py").read_text(encoding="utf-8")
    for old, new in edits:
        assert old in source, f"the patch no longer applies: {old!r}"
        source = source.replace(old, new)
    return source


def expected_hint(name: str, expect: str) -> tuple[str, str]:
    """(the title it names, the hint the learner must see)."""
    exercise = catalogue.exercise(name)
    kind, start = expect.split(": ", 1)
    items = exercise.mistakes if kind == "mistake" else exercise.checks
    (item,) = [item for item in items if item.title.startswith(start)]
    return item.title, item.hint


@pytest.mark.parametrize("name, edits, expect, base", MUTANTS)
def test_every_classic_mistake_fails_with_its_hint(name, edits, expect, base, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(source_of(name, edits, base), encoding="utf-8")
    report, out = grade(name, path)
    title, hint = expected_hint(name, expect)
    assert not report.ok and report.not_implemented is None, out
    assert report.hint == hint, out
    if expect.startswith("mistake"):
        assert report.mistake == title, out
    else:
        assert report.mistake is None and report.check == title, out
    assert f"hint: {hint}" in out and "Traceback" not in out


def test_every_exercise_has_a_catalogue_of_at_least_three_mistakes() -> None:
    counts = {name: sum(param.values[0] == name for param in MUTANTS) for name in catalogue.ORDER}
    assert min(counts.values()) >= 3, counts
    for name in catalogue.ORDER:  # every mistake the grader can name is caught by a mutant above
        named = {expected_hint(name, param.values[2])[0] for param in MUTANTS if param.values[0] == name}
        assert {mistake.title for mistake in catalogue.exercise(name).mistakes} <= named, name


def test_no_catalogued_mistake_gives_the_right_answer_on_the_probes() -> None:
    """A mistake whose probe outputs equal a correct solution's would be named for code that is right."""
    from scratchformers.exercises.checks.core import _probe, _same

    for name in catalogue.ORDER:
        exercise = catalogue.exercise(name)
        learner = load_learner(exercise, REFERENCE / f"{name}.py")
        plain = {function: getattr(learner.module, function) for function in exercise.function_names}
        right = _probe(exercise, plain)
        for mistake in exercise.mistakes:
            wrong = _probe(exercise, {**plain, **mistake.functions})
            assert not all(_same(a, b) for (function, _), a, b in zip(exercise.probes, right, wrong)
                           if function in mistake.functions), (name, mistake.title)


# ----------------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------------

def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_python_m_scratchformers_check_exits_0_1(tmp_path: Path) -> None:
    """The real command, in a process of its own: 0 when every check passes, 1 with the explained failure."""
    wrong = tmp_path / "softmax.py"
    wrong.write_text(SOFTMAX.format(e="np.exp(x)", total="e.sum(axis=-1, keepdims=True)"), encoding="utf-8")
    command = [sys.executable, "-m", "scratchformers", "check", "softmax"]
    passing = subprocess.run([*command, str(REFERENCE / "softmax.py")], capture_output=True, text=True)
    failing = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True)
    assert passing.returncode == 0 and "all 3 checks pass" in passing.stdout, passing.stdout + passing.stderr
    assert failing.returncode == 1, failing.stdout + failing.stderr
    lines = failing.stdout.splitlines()
    assert lines[2].startswith("PASS") and lines[3].startswith("FAIL  exact for large inputs")
    assert "smallest failing case (shrunk by hypothesis):" in failing.stdout and "  x = (1,) float64" in failing.stdout
    assert "NaN or infinite" in failing.stdout and "expected [ 1]" in failing.stdout
    assert "likely mistake: no max subtraction" in failing.stdout
    assert "hint: subtract each row's maximum" in failing.stdout
    assert lines[-1] == "1 of 3 checks pass; fix the first failure and run this again" and failing.stderr == ""


def test_a_stub_is_exit_1_not_implemented_yet(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "attention", str(catalogue.stub("attention")))
    assert code == 1 and err == ""
    assert "not implemented yet: attention still raises NotImplementedError (attention.py, line" in out


@pytest.mark.parametrize("source, args, message", [
    (None, ["softmax", "missing.py"], "no such file: missing.py"),
    ("def softmx(x):\n    return x\n", ["softmax"],
     "defines no function softmax; the softmax exercise needs softmax(x)"),
    ("def layer_norm(x, gamma, beta):\n    return x\n", ["layernorm"],
     "layer_norm(x, gamma, beta) cannot be called as the exercise calls it; "
     "write layer_norm(x, gamma, beta, eps=1e-5)"),
    ("import numpy as np\nscale = 1 / 0\n", ["softmax"],
     "cannot be imported: ZeroDivisionError: division by zero (mine.py, line 2: scale = 1 / 0)"),
    ("def softmax(x)\n    return x\n", ["softmax"], "cannot be imported: SyntaxError: expected ':' (mine.py, line 1)"),
    (None, ["softmx", "x.py"], "no exercise named 'softmx'; did you mean 'softmax'?"),
    (None, [], "give EXERCISE FILE, or --list [DIR], or --init DIR"),
    (None, ["softmax"], "which file? scratchformers check softmax FILE"),
    (None, ["--list", "--init", "somewhere"], "give EXERCISE FILE, or --list [DIR], or --init DIR"),
    (None, ["--force", "--list"], "--force only goes with --init"),
    (None, ["--list", "no-such-folder"], "no such folder: no-such-folder"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, tmp_path: Path, monkeypatch, source, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    if source is not None:
        (tmp_path / "mine.py").write_text(source, encoding="utf-8")
        args = [*args, "mine.py"]
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == "", out
    assert err.count("\n") == 1 and err.startswith("scratchformers check: error: ") and message in err, err


def test_a_check_that_runs_too_long_is_stopped(monkeypatch, tmp_path: Path) -> None:
    from scratchformers.exercises.checks import core

    monkeypatch.setattr(core, "CHECK_SECONDS", 1)
    path = tmp_path / "softmax.py"
    path.write_text("def softmax(x):\n    while True:\n        pass\n", encoding="utf-8")
    report, out = grade("softmax", path)
    assert report.too_slow and report.passed == 0 and "stopped after 1 s: your code may loop forever" in out


def test_missing_hypothesis_and_triton_are_one_line_errors(capsys, monkeypatch) -> None:
    probe = ("import sys; sys.modules['hypothesis'] = None\n"
             "from scratchformers.train.cli import main\nsys.exit(main(['check', '--list']))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr == (
        "scratchformers check: error: the checks need hypothesis, which is not installed: pip install hypothesis\n")
    monkeypatch.setitem(sys.modules, "triton", None)
    code, _, err = run_cli(capsys, "triton_softmax", str(REFERENCE / "triton_softmax.py"))
    assert code == 2 and "the triton_softmax exercise needs triton, which is not installed: pip install" in err


def test_init_copies_the_stubs_and_never_overwrites_without_force(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    code, out, _ = run_cli(capsys, "--init", str(folder))
    assert code == 0 and sorted(p.stem for p in folder.iterdir()) == sorted(catalogue.ORDER)
    assert (folder / "gelu.py").read_text(encoding="utf-8") == catalogue.stub("gelu").read_text(encoding="utf-8")
    (folder / "gelu.py").write_text("my work", encoding="utf-8")
    code, out, err = run_cli(capsys, "--init", str(folder))
    assert code == 2 and "13 of the files exist already" in err and "nothing was copied" in err
    assert (folder / "gelu.py").read_text(encoding="utf-8") == "my work"
    code, _, _ = run_cli(capsys, "--init", str(folder), "--force")
    assert code == 0 and (folder / "gelu.py").read_text(encoding="utf-8") != "my work"


def test_list_shows_the_exercises_in_order_and_which_of_a_folder_pass(capsys, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "--list")
    numbered = [line.split()[1] for line in out.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    assert code == 0 and numbered == list(catalogue.ORDER) and len(numbered) >= 10
    (tmp_path / "softmax.py").write_text((REFERENCE / "softmax.py").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "gelu.py").write_text(catalogue.stub("gelu").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "layernorm.py").write_text(source_of("layernorm", [(" + beta", "")], "other_style"), encoding="utf-8")
    (tmp_path / "triton_softmax.py").write_text(source_of("triton_softmax", [], "reference"), encoding="utf-8")
    code, out, _ = run_cli(capsys, "--list", str(tmp_path))
    status = dict(zip(numbered, out.splitlines()[1::2]))
    assert code == 0 and status["softmax"].strip().startswith("PASS  all 3 checks pass")
    assert status["gelu"].strip().startswith("--    not implemented yet")
    assert status["layernorm"].strip().startswith("FAIL  0 of 4 checks pass")
    assert status["bpe"].strip().startswith("-- no ")
    assert status["triton_softmax"].strip().startswith("PASS  all 4 checks pass")  # graded in a child process


def test_a_kernel_that_kills_its_process_is_a_failure_not_a_crash(capsys, tmp_path: Path) -> None:
    """Triton's interpreter does not check bounds: a stray store can corrupt memory and kill the process, so kernels
    are graded in a child process and its death is reported as a failed check."""
    path = tmp_path / "triton_softmax.py"
    path.write_text("import os, signal\n\n\ndef softmax(x):\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
                    encoding="utf-8")
    code, out, _ = run_cli(capsys, "triton_softmax", str(path))
    assert code == 1 and "FAIL  the process that ran your kernel died (SIGSEGV)" in out


def test_the_exercises_readme_lists_every_exercise_in_order() -> None:
    readme = (HERE.parent.parent / "exercises" / "README.md").read_text(encoding="utf-8")
    positions = [readme.find(f"`{name}`") for name in catalogue.ORDER]
    assert -1 not in positions and positions == sorted(positions), dict(zip(catalogue.ORDER, positions))


def test_the_mutant_hunt_grades_single_point_mutations() -> None:
    """tools/hunt_exercise_mutants.py: how the grader was searched for wrong solutions it passes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hunt", HERE.parent.parent / "tools" / "hunt_exercise_mutants.py")
    hunt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hunt)
    source = hunt.seed_path("softmax").read_text(encoding="utf-8")
    found = dict(hunt.mutants(source))
    assert len(found) >= 10 and all(text != source for text in found.values())
    (axis,) = [text for description, text in found.items() if "np.max(x, axis=-1" in text and "axis=0" in text]
    assert hunt.grade("softmax", axis) == "killed" and hunt.grade("softmax", source) == "survived"
