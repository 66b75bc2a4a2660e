"""Every case of the bad-input corpus through the command line: one clear error line, exit code 2, nothing changed.

A good workspace (cutouts, light curves, two tiny checkpoints, embeddings, a map, scores, a saved selection and
labels) is built once per session and copied for each case. Most cases call ``explorer.cli.main`` in process
(exit code and stderr as the user sees them); those marked ``subprocess`` run the real ``python -m explorer.cli``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.badinput.corpus import CASES, IMAGE_IDS, LABELLED, LC_IDS, SELECTION, Case
from tests.conftest import run_cli, snapshot

pytestmark = pytest.mark.slow  # ~100 cases: about 30-60 s on two shared cores

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
MAX_ERROR_LENGTH = 1000  # an error line longer than this is not readable on a terminal


# ------------------------------------------------------------------------------------------- the good workspace
def _lightcurves() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    rows = []
    for i, oid in enumerate(LC_IDS):
        t = np.sort(rng.uniform(58000, 58100, 20))
        for band in ("g", "r"):
            rows.append(
                pd.DataFrame(
                    {"id": oid, "time": t, "mag": 18 + 0.3 * np.sin(t / (1 + i)), "err": 0.02, "band": band}
                )
            )
    table = pd.DataFrame(
        {"id": LC_IDS, "ra": rng.uniform(0, 10, len(LC_IDS)), "dec": rng.uniform(0, 10, len(LC_IDS))}
    )
    return table, pd.concat(rows, ignore_index=True)


def build_good_workspace(path: Path) -> Path:
    """Cutouts + light curves, tiny checkpoints for both, embeddings, PCA map, kNN scores, a selection, labels."""
    import torch

    from explorer.analysis.workspace_ops import map_workspace, score_workspace, select
    from explorer.data.ingest import add_objects
    from explorer.models.embed import embed_workspace
    from explorer.models.image_encoder import ImageModelConfig
    from explorer.models.lightcurve_encoder import LightCurveEncoderConfig
    from explorer.models.registry import record_training_data
    from explorer.models.train_image import ImagePretrainConfig, pretrain_images
    from explorer.models.train_lightcurve import pretrain_lightcurves
    from explorer.workspace import Workspace
    from tests.pipeline.conftest import add_blobs, make_blobs

    torch.set_num_threads(1)
    ws = Workspace.create(path)
    add_blobs(ws, n=len(IMAGE_IDS))
    table, lc = _lightcurves()
    add_objects(ws, table, source="stars", lightcurves=lc, progress=False)
    _, imgs = make_blobs(len(IMAGE_IDS))
    cfg = ImagePretrainConfig(
        model=ImageModelConfig(bands=1, input_size=32, widths=(8, 16), embedding_dim=16),
        batch_size=16,
        projector_hidden=32,
        projector_dim=16,
    )
    pretrain_images(imgs, cfg, ws.checkpoint_dir("image-blobs"), epochs=1, seed=0, progress=False)
    record_training_data(ws.checkpoint_dir("image-blobs"), image_set="blobs")
    lcfg = LightCurveEncoderConfig(
        d_model=16, n_layers=1, n_heads=2, d_ff=32, embedding_dim=16, batch_size=8, warmup_steps=1, max_len=64
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "tensor with requires_grad to scalar" note
        pretrain_lightcurves(lc, lcfg, ws.checkpoint_dir("lightcurve"), epochs=1, progress=False)
    ws = Workspace.open(path)
    embed_workspace(ws, progress=False)
    map_workspace(ws, method="pca")
    score_workspace(ws, method="knn")
    select(ws, np.array([[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]]), save=SELECTION)
    with ws.labels() as store:
        for oid, label in LABELLED.items():
            store.add([oid], label, user="alice")
    return path


@pytest.fixture(scope="session")
def good_workspace(tmp_path_factory) -> Path:
    return build_good_workspace(tmp_path_factory.mktemp("badinput") / "good-ws")


# ------------------------------------------------------------------------------------------- running a case
def fingerprint(folder: Path) -> tuple[dict, dict, set]:
    """Size and mtime (tests/conftest.py::snapshot), sha256 of every file, and every folder: byte-for-byte."""
    hashes = {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    }
    folders = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_dir()}
    return snapshot(folder), hashes, folders


def run(case: Case, argv: list, cwd: Path, capsys) -> tuple[int, str]:
    """Exit code and stderr of ``explorer ARGV``, in a subprocess or in process."""
    if case.subprocess:
        res = run_cli(*argv, cwd=cwd, timeout=120)
        return res.returncode, res.stderr
    from explorer.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


# A tqdm bar as drawn on stderr ("embed image:blobs:   0%|          | 0/1 [00:00<?, ?part/s]"), in case a bar from
# outside explorer.progress (a library's) is drawn before a command's error.
_BAR = re.compile(r"[^\r\n]*?\d+%\|[^|\r\n]*\|[^\r\n\[]*\[[^\]\r\n]*\]")


def error_line(stderr: str) -> str:
    """The one ``error:`` line, after any ``warning:`` lines; fails on anything else (a traceback, two errors)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in _BAR.sub("", stderr).splitlines() if line.strip()]
    rest = [line for line in lines if not line.startswith("warning: ")]
    assert len(rest) == 1, f"expected one error line after the warnings, got:\n{stderr}"
    line = rest[0]
    assert line.startswith("error: "), stderr
    assert lines[-1] == line, "the error must be the last line"
    assert "unexpected" not in line, f"an internal error, not a clear message: {line}"
    assert len(line) <= MAX_ERROR_LENGTH, f"error line of {len(line)} characters: {line[:200]}..."
    return line


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case: Case, good_workspace: Path, tmp_path: Path, capsys):
    ws = tmp_path / "ws"
    shutil.copytree(good_workspace, ws)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    argv = case.write(inputs, ws)
    before = fingerprint(tmp_path)
    code, stderr = run(case, argv, tmp_path, capsys)
    if case.code == 0:
        assert code == 0, stderr
        assert "Traceback" not in stderr, stderr
        if case.match:
            assert re.search(case.match, stderr), stderr
        case.check(inputs, ws, stderr)
        return
    assert code == case.code, f"exit code {code}, expected {case.code}:\n{stderr}"
    line = error_line(stderr)
    assert re.search(case.match, line), f"{line!r} does not match {case.match!r}"
    after = fingerprint(tmp_path)
    assert after[2] == before[2], f"folders changed: {sorted(after[2] ^ before[2])}"
    assert after[1] == before[1], f"files changed: {sorted(set(after[1].items()) ^ set(before[1].items()))}"
    assert after[0] == before[0], "a file was rewritten (same bytes, new modification time)"


def test_a_failing_embed_leaves_no_progress_bar_behind(good_workspace, tmp_path):
    """A corrupt checkpoint stops ``explorer embed`` at once: its error is the only line, with no half-drawn bar."""
    ws = tmp_path / "ws"
    shutil.copytree(good_workspace, ws)
    weights = ws / "checkpoints" / "image-blobs" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    res = run_cli("embed", ws, cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr


# ------------------------------------------------------------------------------------------- the corpus itself
def test_the_corpus_is_broad():
    """At least 30 cases; every command but finetune (needs labels and a long run) and every reader is covered."""
    from explorer.cli import build_parser
    from explorer.data import formats

    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
    sub = next(a for a in build_parser()._actions if a.choices and "ingest" in a.choices)
    covered = {c.command for c in CASES}
    commands = set(sub.choices) - {"finetune"}
    assert commands - covered == set(), f"commands with no bad-input case: {commands - covered}"
    areas = " ".join(c.area for c in CASES).lower()
    readers = {
        "catalogue: csv",
        "catalogue: parquet",
        "catalogue: fits",
        "catalogue: votable",
        "catalogue: ecsv",
        "catalogue: galaxy-datasets",
        "images: fits per object",
        "images: fits cube",
        "images: png",
        "images: hdf5",
        "light curves: long table",
        "light curves: folder",
    }
    assert {r for r in readers if r not in areas} == set()
    assert set(formats.formats("catalog")) == {"csv", "parquet", "fits", "votable", "ecsv", "galaxy-datasets"}


def test_the_documentation_lists_every_case():
    text = DOC.read_text()
    missing = [c.name for c in CASES if f"`{c.name}`" not in text]
    assert not missing, f"docs/bad-input.md lacks {missing}"
