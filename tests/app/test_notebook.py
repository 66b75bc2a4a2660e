"""The same app in a Jupyter notebook: it displays (whole and part by part), and a lasso driven through the map's
stream from Python selects what the test computes itself from the polygon."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

pytestmark = pytest.mark.slow

POLYGON = [(-2.0, -2.0), (2.5, -1.0), (1.5, 3.0), (-1.5, 2.0)]


def test_explorer_displays_in_a_notebook_and_a_python_lasso_selects(app_workspace, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from explorer.workspace import Workspace

    cells = [
        "import panel as pn\npn.extension()\nfrom explorer.app import Explorer\n"
        f"app = Explorer({str(app_workspace)!r}, user='notebook')\napp",
        "app.map",
        "app.inspector",
        "app.labeller",
        "import json, numpy as np\n"
        "lasso = app.map.lasso_stream\n"
        f"lasso.event(geometry=np.array({POLYGON!r}))\n"
        "print(json.dumps(sorted(map(str, app.session.selected_ids))))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    for cell in nb.cells[:4]:  # the app and each part display as Panel objects
        kinds = {k for out in cell.outputs for k in out.get("data", {})}
        assert "application/vnd.holoviews_exec.v0+json" in kinds, cell.source
    printed = "".join(out.get("text", "") for out in nb.cells[4].outputs if out.get("name") == "stdout")
    coords = Workspace.open(app_workspace).map()[0]
    inside = shapely.contains_xy(
        shapely.Polygon(POLYGON), coords["x"].to_numpy(np.float64), coords["y"].to_numpy(np.float64)
    )
    expected = sorted(coords["id"][inside].astype(str))
    assert len(expected) > 10
    assert json.loads(printed) == expected
