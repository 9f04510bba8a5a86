"""The guided tour, notebooks/transformers_from_scratch.ipynb: committed with its outputs, and it runs top to bottom.

The run executes a copy in quick mode (``SCRATCHFORMERS_NOTEBOOK_QUICK=1``: a few seconds of training instead of
minutes). The kernel is a kernelspec written into a temporary folder for *this* interpreter (``sys.executable``), so
the notebook runs in the environment under test whatever kernels the machine has installed.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

REASON = "needs the test extra's Jupyter packages (pip install -e '.[test]'), absent e.g. on the GPU machines"
nbformat = pytest.importorskip("nbformat", reason=REASON)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "transformers_from_scratch.ipynb"
KERNEL_NAME = "scratchformers-test"


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_committed_notebook_has_its_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = code_cells(notebook)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "run it top to bottom once"
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 10, "the plots must be committed"
    assert "quick mode: False" in "".join(output.get("text", "") for output in outputs), "outputs of a full run"


def test_notebook_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    NotebookClient = pytest.importorskip("nbclient", reason=REASON).NotebookClient
    install_kernelspec = pytest.importorskip("ipykernel.kernelspec", reason=REASON).install
    prefix = tmp_path / "jupyter"
    install_kernelspec(kernel_name=KERNEL_NAME, prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("SCRATCHFORMERS_NOTEBOOK_QUICK", "1")
    notebook = copy.deepcopy(nbformat.read(NOTEBOOK, as_version=4))
    for cell in code_cells(notebook):
        cell.outputs, cell.execution_count = [], None

    client = NotebookClient(notebook, timeout=600, kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first cell that fails (its asserts included)

    cells = code_cells(notebook)
    assert all(cell.execution_count is not None for cell in cells)
    text = "".join(output.get("text", "") for cell in cells for output in cell.outputs)
    assert "quick mode: True" in text
    assert "finished: 20 steps" in text
