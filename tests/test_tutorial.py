"""The tutorial notebook (examples/tutorial.ipynb) executes top to bottom, so it cannot rot.

The full execution trains SmolLM2 twice and audits one run: about 10 minutes on 2 CPU cores, so it is marked
``slow`` (``make test`` runs it; ``pytest -m 'not slow'`` skips it). Without local SST-2 data it is skipped, as the
other tests on real data are; the notebook's own refusal to start without ``PACZERO_DATA_DIR`` is checked quickly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat and nbclient come with the dev extra")
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"
SHARED_DATA = ROOT.parent / "shared" / "data"


def _execute(nb, env: dict[str, str], *, timeout: int) -> None:
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env=env)  # the kernel's environment


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_the_notebook_stops_with_a_clear_message_without_data():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = nb.cells[:2]  # the introduction and the set-up cell
    env = {k: v for k, v in os.environ.items() if k != "PACZERO_DATA_DIR"}
    with pytest.raises(CellExecutionError, match="PACZERO_DATA_DIR is not set"):
        _execute(nb, env, timeout=120)


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(tmp_path):
    data = os.environ.get("PACZERO_DATA_DIR") or (str(SHARED_DATA) if (SHARED_DATA / "sst2").is_dir() else None)
    if data is None:
        pytest.skip("no SST-2 data: set PACZERO_DATA_DIR")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _execute(nb, {**os.environ, "PACZERO_DATA_DIR": data, "PACZERO_TUTORIAL_OUT": str(tmp_path)}, timeout=1800)
    for name in ("zpl", "mi"):
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["steps_run"] == 6
    assert json.loads((tmp_path / "zpl" / "metrics.json").read_text())["privacy"]["mi_bound_nats"] == 0.0
    mi = json.loads((tmp_path / "mi" / "metrics.json").read_text())
    assert mi["privacy"]["mi_bound_nats"] == 0.33 and "audit" not in mi
    assert json.loads((tmp_path / "mi" / "private" / "privacy.json").read_text())["achieved_mi_nats"] <= 0.33
    assert (tmp_path / "mi" / "private" / "audit" / "summary.json").is_file()
    assert (tmp_path / "report" / "report.md").is_file()
    text = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "I = 0 nats, MIA posterior <= 0.5" in text
    assert any(out.get("data", {}).get("image/png") for cell in nb.cells if cell.cell_type == "code"
               for out in cell.outputs)
