"""The tutorial notebooks: stored without outputs, in sync with ``notebooks/_build.py``, and each runs top to bottom
headless (nbclient) on the embedded default data, leaving behind what its text promises."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01_quickstart.ipynb",
    "02_bring_your_own_data.ipynb",
    "03_anomaly_hunt_and_finetune.ipynb",
    "04_scale_out.ipynb",
]
CELL_TIMEOUT = 600  # seconds per cell; a whole notebook takes one to a few minutes on 2 shared cores
KERNEL_STARTUP_TIMEOUT = 180  # nbclient's default (60 s) is too short for a new kernel on a busy machine


def _build_module():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook(name: str, folder: Path) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``notebooks/<name>`` with ``folder`` as its working directory; returns it executed and the seconds."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        startup_timeout=KERNEL_STARTUP_TIMEOUT,
        resources={"metadata": {"path": str(folder)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on any error
    return nb, time.perf_counter() - start


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook's cells printed to stdout."""
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream" and out.name == "stdout"
    )


# ---------------------------------------------------------------------------------------------------- fast checks
def test_the_four_tutorials_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) == EXPECTED


def test_notebooks_match_their_source():
    stale = _build_module().stale()
    assert stale == [], f"{stale} differ from notebooks/_build.py; run `python notebooks/_build.py`"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"


# ---------------------------------------------------------------------------------------------------- execution
@pytest.mark.slow
def test_quickstart_runs_and_exports_the_labels(tmp_path):
    from astropy.io.votable import parse

    from explorer.workspace import Workspace

    nb, seconds = run_notebook("01_quickstart.ipynb", tmp_path)
    text = printed(nb)
    assert "objects inside the lasso" in text  # the cell asserts the app and the library agree on the ids
    ws = Workspace.open(tmp_path / "explorer-demo")
    assert len(ws.catalog) == 2158 + 1000
    assert ws.versions("maps")[ws.current("maps")]["method"] == "pca"  # the quick map its text promises
    with ws.labels() as store:
        current = store.current()
    assert len(current) == 12 and set(current["user"]) == {"quickstart"}
    table = parse(tmp_path / "labelled.vot").get_first_table().to_table()
    assert sorted(map(str, table["id"])) == sorted(current["id"])
    print(f"01_quickstart: {seconds:.0f} s")


@pytest.mark.slow
def test_bring_your_own_data_builds_a_workspace_from_files(tmp_path):
    from explorer.workspace import Workspace

    nb, seconds = run_notebook("02_bring_your_own_data.ipynb", tmp_path)
    assert len(list((tmp_path / "my_survey" / "cutouts").glob("*.fits"))) == 240
    ws = Workspace.open(tmp_path / "my-survey-ws")
    assert len(ws.catalog) == 240 and ws.catalog.modalities() == {"image": 240, "lightcurve": 82}
    made_here = [
        v
        for v, m in ws.versions("embeddings").items()
        if m.get("models", {}).get("image:mysurvey", {}).get("name") == "image-mysurvey"
    ]
    assert made_here, "no embedding version from the encoder pretrained in the notebook"
    coords, meta = ws.map()
    assert len(coords) == 240 and meta["method"] == "pca" and meta["embeddings"] == ws.current("embeddings")
    assert "kNN accuracy on kind" in printed(nb)
    print(f"02_bring_your_own_data: {seconds:.0f} s")


@pytest.mark.slow
def test_anomaly_hunt_labels_and_finetunes(tmp_path):
    from explorer.workspace import Workspace

    nb, seconds = run_notebook("03_anomaly_hunt_and_finetune.ipynb", tmp_path)
    ws = Workspace.open(tmp_path / "anomaly-hunt")
    with ws.labels() as store:
        current = store.current()
    assert len(current) == 150 and set(current["user"]) == {"oracle"}
    truth = ws.catalog.table.set_index("id").loc[current["id"], "is_oddity"].to_numpy(dtype=bool)
    assert (truth == (current["label"] == "anomaly").to_numpy()).all()  # the oracle told the truth
    versions = ws.versions("embeddings")
    tuned = versions[ws.current("embeddings")]
    assert len(versions) == 2 and tuned["finetune"]["head_only"] is True
    maps = ws.versions("maps")
    assert maps[ws.current("maps")]["embeddings"] == ws.current("embeddings")
    assert {m["method"] for m in maps.values()} == {"pca"}
    text = printed(nb)
    assert "oddities found in 150 looks" in text
    assert "neighbour_jaccard" in text and "knn_accuracy_new" in text  # compare_versions' numbers are shown
    print(f"03_anomaly_hunt_and_finetune: {seconds:.0f} s")


@pytest.mark.slow
def test_scale_out_gives_the_same_vectors_on_dask(tmp_path):
    from explorer.workspace import Workspace

    nb, seconds = run_notebook("04_scale_out.ipynb", tmp_path)
    ws = Workspace.open(tmp_path / "scale-demo")
    on_dask, in_process = sorted(ws.versions("embeddings"))
    assert ws.versions("embeddings")[on_dask]["scheduler"].startswith("tcp://")
    assert np.array_equal(
        np.asarray(ws.embeddings(on_dask).vectors), np.asarray(ws.embeddings(in_process).vectors)
    )
    assert ws.versions("maps")[ws.current("maps")]["scheduler"].startswith("tcp://")
    assert "largest difference between the two: 0" in printed(nb)
    print(f"04_scale_out: {seconds:.0f} s")
