"""Fine-tuning on labels: a new embedding version that keeps the old one, separates the labelled classes, says how
many labels are missing, repeats itself for a seed, and runs from the command line."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from explorer.errors import DataError, WorkspaceError
from explorer.models.embed import embed_workspace
from explorer.models.finetune import FinetuneConfig, compare_versions, finetune_workspace
from explorer.models.registry import load_encoder, read_ref, record_training_data
from explorer.workspace import Workspace
from tests.conftest import run_cli
from tests.pipeline.conftest import add_blobs, make_blobs

FULL = FinetuneConfig(batch_size=16, labelled_batch=10, lr=1e-3)


@pytest.fixture(scope="module")
def ssl_checkpoint(tmp_path_factory):
    """A 1-band image encoder pretrained (self-supervised) for one short epoch on the blobs."""
    from explorer.models.image_encoder import ImageModelConfig
    from explorer.models.train_image import ImagePretrainConfig, pretrain_images

    _, imgs = make_blobs(32)
    out = tmp_path_factory.mktemp("ckpt") / "image-blobs"
    cfg = ImagePretrainConfig(
        model=ImageModelConfig(bands=1, input_size=32, widths=(8, 16), embedding_dim=16),
        batch_size=16,
        projector_hidden=32,
        projector_dim=16,
    )
    pretrain_images(imgs, cfg, out, epochs=1, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def embedded_template(tmp_path_factory, ssl_checkpoint):
    """64 blobs (compact / double), embedded once; tests work on copies."""
    ws = Workspace.create(tmp_path_factory.mktemp("tpl") / "ws")
    add_blobs(ws)
    target = ws.checkpoint_dir("image-blobs")
    shutil.copytree(ssl_checkpoint, target)
    record_training_data(target, image_set="blobs")
    embed_workspace(ws, progress=False)
    return ws.path


@pytest.fixture
def ws(tmp_path, embedded_template):
    shutil.copytree(embedded_template, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")


def label(ws: Workspace, n_per_class: int = 5) -> dict[str, str]:
    """Label the first ``n_per_class`` objects of each true class with that class."""
    table = ws.catalog.table
    chosen = {}
    with ws.labels() as store:
        for cls in ("compact", "double"):
            ids = table.loc[table["class"] == cls, "id"].tolist()[:n_per_class]
            if ids:
                store.add(ids, cls, user="tester")
            chosen.update(dict.fromkeys(ids, cls))
    return chosen


def class_margin(ws: Workspace, version: str) -> float:
    """Mean cosine similarity to objects of the same true class minus that to the other class (all objects)."""
    emb = ws.embeddings(version)
    cls = ws.catalog.rows(emb.ids)["class"].to_numpy()
    X = np.asarray(emb.vectors)
    sim = X @ X.T
    same = cls[:, None] == cls[None, :]
    np.fill_diagonal(same, False)
    return float(sim[same].mean() - sim[cls[:, None] != cls[None, :]].mean())


def test_head_only_makes_a_new_current_version_and_the_old_one_stays(ws):
    old = ws.current("embeddings")
    old_vectors = np.array(ws.embeddings(old).vectors)
    label(ws)
    progress = []
    new = finetune_workspace(ws, head_only=True, epochs=1, progress=lambda f, m: progress.append((f, m)))
    assert new != old and ws.current("embeddings") == new
    assert Workspace.open(ws.path).current("embeddings") == new
    np.testing.assert_array_equal(ws.embeddings(old).vectors, old_vectors)  # the old version still loads
    meta = ws.versions("embeddings")[new]
    assert meta["finetune"]["from_embeddings"] == old and meta["finetune"]["head_only"] is True
    ckpt = ws.path / meta["models"]["image:blobs"]["checkpoint"]
    assert ckpt.parent == ws.path / "checkpoints" and ckpt.name.startswith("finetuned-blobs-")
    trained_on = json.loads((ckpt / "trained_on.json").read_text())
    assert trained_on["n_labels"] == 10 and trained_on["finetuned_from"].endswith("image-blobs")
    with ws.labels() as store:
        assert trained_on["labels_event_id"] == store.last_event_id()
    encoder = load_encoder(read_ref(ckpt))  # the loader of its parent reads it
    assert encoder.embedding_dim == ws.embeddings(new).vectors.shape[1] == 16 + FinetuneConfig().head_dim
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and new in progress[-1][1]


def test_head_only_keeps_the_self_supervised_embedding_whole(ws):
    old = ws.embeddings(ws.current("embeddings"))
    label(ws)
    new = ws.embeddings(finetune_workspace(ws, head_only=True, epochs=1, progress=False))
    d = old.vectors.shape[1]
    block = np.array(new.vectors[:, :d])
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    assert list(new.ids) == list(old.ids)
    np.testing.assert_allclose(block, old.vectors, atol=2e-3)


@pytest.mark.parametrize(
    ("head_only", "keep"),
    [
        (True, "auto"),
        pytest.param(False, "ntxent", marks=pytest.mark.slow),
        pytest.param(False, "distill", marks=pytest.mark.slow),
    ],
    ids=["head-only", "full-ntxent", "full-distill"],
)
def test_labelled_classes_are_better_separated_after_finetuning(ws, head_only, keep):
    before = ws.current("embeddings")
    label(ws)
    config = replace(FULL, keep=keep)
    after = finetune_workspace(
        ws, head_only=head_only, epochs=1 if head_only else 3, progress=False, config=config
    )
    assert class_margin(ws, after) > class_margin(ws, before) + (0.05 if head_only else 0.002)
    ckpt = ws.path / ws.versions("embeddings")[after]["models"]["image:blobs"]["checkpoint"]
    recorded = json.loads((ckpt / "config.json").read_text())["finetune"]
    assert recorded["mode"] == ("head-only" if head_only else "full")
    if not head_only:
        assert recorded["keep"] == keep
    result = compare_versions(ws, before, after, k=5)
    assert result["n_labelled"] == 10 and result["classes"] == {"compact": 5, "double": 5}
    assert result["knn_accuracy_new"] >= result["knn_accuracy_old"]
    assert 0 < result["neighbour_jaccard"] < 1


def test_only_the_tuned_encoder_embeds_again_the_others_vectors_are_kept(ws, monkeypatch):
    from explorer.data.ingest import add_objects
    from explorer.data.readers_images import ImageInput
    from explorer.models import embed

    table, imgs = make_blobs(12, seed=3)
    table["id"] = [f"other{i:02d}" for i in range(12)]
    inp = ImageInput(table["id"].tolist(), imgs.shape[1:], ("img",), lambda a, b: imgs[a:b], "others", 12)
    add_objects(ws, table, source="others", images=inp, image_set="others", progress=False)
    with pytest.warns(UserWarning, match="'others' has no encoder of its own"):
        old = embed_workspace(ws, progress=False)  # both image sets, by the same self-supervised encoder
    old_others = ws.embeddings(old, space="image")
    keep = np.flatnonzero(np.char.startswith(old_others.ids.astype(str), "other"))
    label(ws)  # labels only in image set "blobs"
    ran = []
    real = embed.embed_partition
    monkeypatch.setattr(
        embed, "embed_partition", lambda p, job, *a, **k: ran.append(job.key) or real(p, job, *a, **k)
    )
    new = finetune_workspace(ws, head_only=True, epochs=1, progress=False)
    assert set(ran) == {"image:blobs"}  # "others" was not tuned: not embedded again
    models = ws.versions("embeddings")[new]["models"]
    assert models["image:others"]["reused_from"] == old and "reused_from" not in models["image:blobs"]
    joint = ws.embeddings(new)
    rows = pd.Index(joint.ids).get_indexer(pd.Index(old_others.ids[keep]))
    tuned_dim = 16 + FinetuneConfig().head_dim  # the joint space is rebuilt: [tuned block ; untouched block]
    assert joint.vectors.shape[1] == tuned_dim + 16
    np.testing.assert_array_equal(joint.vectors[rows, :tuned_dim], 0.0)
    np.testing.assert_allclose(joint.vectors[rows, tuned_dim:], old_others.vectors[keep], atol=1e-6)


def held_out_scores(ws: Workspace, version: str, labelled: dict[str, str]) -> tuple[float, float]:
    """kNN (k=3) accuracy of the unlabelled objects from the labelled ones, and the class margin among them."""
    from sklearn.neighbors import KNeighborsClassifier

    emb = ws.embeddings(version)
    cls = ws.catalog.rows(emb.ids)["class"].to_numpy(dtype=str)
    X = np.asarray(emb.vectors)
    seen = np.isin(emb.ids.astype(str), list(labelled))
    knn = KNeighborsClassifier(3).fit(X[seen], cls[seen])
    accuracy = float((knn.predict(X[~seen]) == cls[~seen]).mean())
    Xh, yh = X[~seen], cls[~seen]
    sim, same = Xh @ Xh.T, yh[:, None] == yh[None, :]
    np.fill_diagonal(same, False)
    return accuracy, float(sim[same].mean() - sim[yh[:, None] != yh[None, :]].mean())


def test_head_only_brings_unlabelled_objects_of_a_labelled_class_closer(ws):
    labelled = label(ws, 4)  # 8 of 64 labelled; the other 56 are the held-out test
    old = ws.current("embeddings")
    before = held_out_scores(ws, old, labelled)
    new = finetune_workspace(ws, head_only=True, epochs=2, progress=False)
    after = held_out_scores(ws, new, labelled)
    assert after[1] > before[1] + 0.3  # same-class objects nobody labelled are much closer than before
    assert after[0] >= before[0]
    # the label block is centred: no offset shared by every object (which made all objects alike in it)
    block = np.asarray(ws.embeddings(new).vectors)[:, ws.embeddings(old).vectors.shape[1] :]
    assert np.linalg.norm(block.mean(0)) < 0.1 * np.linalg.norm(block, axis=1).mean()


def test_compare_a_version_with_itself(ws):
    label(ws, 3)
    v = ws.current("embeddings")
    result = compare_versions(ws, v, v, k=5)
    assert result["neighbour_jaccard"] == 1.0 and result["n_objects"] == 64
    assert result["knn_accuracy_old"] == result["knn_accuracy_new"]


@pytest.mark.parametrize(
    ("per_class", "message"),
    [
        ({}, "Label 4 more object(s): 2 of each of 2 classes"),
        ({"compact": 3, "double": 1}, "Label 1 more object(s): 1 more 'double'"),
        ({"compact": 6}, "Label 2 more object(s): 2 of another class"),
    ],
)
def test_too_few_labels_says_how_many_more_are_needed(ws, per_class, message):
    table = ws.catalog.table
    with ws.labels() as store:
        for cls, n in per_class.items():
            store.add(table.loc[table["class"] == cls, "id"].tolist()[:n], cls, user="tester")
    versions = dict(ws.versions("embeddings"))
    with pytest.raises(DataError, match="at least 2 classes with at least 2 labelled objects") as err:
        finetune_workspace(ws, head_only=True, epochs=1, progress=False)
    assert message in str(err.value)
    assert ws.versions("embeddings") == versions
    assert not list((ws.path / "checkpoints").glob("finetuned-*"))


def test_finetuning_needs_embeddings_first(tmp_path):
    ws = Workspace.create(tmp_path / "fresh")
    add_blobs(ws, 8)
    with pytest.raises(WorkspaceError, match="explorer embed"):
        finetune_workspace(ws, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("head_only", [True, False], ids=["head-only", "full"])
def test_the_same_seed_gives_the_same_vectors(tmp_path, embedded_template, head_only):
    vectors = []
    for seed, name in ((0, "a"), (0, "b"), (1, "c")):
        shutil.copytree(embedded_template, tmp_path / name)
        ws = Workspace.open(tmp_path / name)
        label(ws, 4)
        v = finetune_workspace(ws, head_only=head_only, epochs=1, seed=seed, progress=False, config=FULL)
        vectors.append(np.array(ws.embeddings(v).vectors))
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[2], atol=1e-4)


def test_finetuning_again_starts_from_the_self_supervised_encoder(ws):
    label(ws)
    first = finetune_workspace(ws, head_only=True, epochs=1, progress=False)
    second = finetune_workspace(ws, head_only=True, epochs=1, progress=False)
    dims = {v: ws.embeddings(v).vectors.shape[1] for v in (first, second)}
    assert dims[first] == dims[second]  # no head stacked on the last head
    ckpt = ws.path / ws.versions("embeddings")[second]["models"]["image:blobs"]["checkpoint"]
    config = json.loads((ckpt / "config.json").read_text())
    assert config["finetune"]["base"].endswith("image-blobs")
    assert config["finetune"]["parent"].endswith("finetuned-blobs-001")


ANALYSIS_READY = all(
    importlib.util.find_spec(m) is not None
    for m in ("explorer.analysis.projection", "explorer.analysis.anomaly")
)


@pytest.mark.slow
@pytest.mark.skipif(
    not ANALYSIS_READY,
    reason="explorer.analysis.projection/anomaly not written yet: "
    "`explorer finetune` re-maps and re-scores with them",
)
def test_cli_finetune_head_only_remaps_and_rescores(ws):
    label(ws)
    old = ws.current("embeddings")
    res = run_cli("finetune", ws.path, "--head-only", "--epochs", "1")
    assert res.returncode == 0, res.stderr
    ws = Workspace.open(ws.path)
    new = ws.current("embeddings")
    assert new != old and f"fine-tuned embeddings {new}" in res.stdout
    assert ws.map()[1]["embeddings"] == new and ws.scores()[1]["embeddings"] == new
    assert old in ws.versions("embeddings")


def test_cli_finetune_with_too_few_labels_is_a_one_line_error(ws):
    res = run_cli("finetune", ws.path, "--head-only")
    assert res.returncode == 2 and "Label 4 more" in res.stderr and "Traceback" not in res.stderr


def test_cli_head_weight_without_head_only_is_a_one_line_error(ws):
    label(ws)
    res = run_cli("finetune", ws.path, "--head-weight", "2")
    assert res.returncode == 2 and "--head-only" in res.stderr and "Traceback" not in res.stderr
    assert len(ws.versions("embeddings")) == 1


def test_balanced_knn_accuracy_sees_what_plain_accuracy_hides_for_a_rare_class():
    from explorer.models.finetune_data import knn_loo_accuracy, label_margin

    rng = np.random.default_rng(0)
    y = np.array(["anomaly"] * 8 + ["normal"] * 142)
    scattered = rng.normal(size=(150, 8))  # no structure: every anomaly's neighbours are mostly normal
    grouped = scattered.copy()
    grouped[:8] += 6.0  # the anomalies gathered in one place
    assert knn_loo_accuracy(scattered, y) == pytest.approx(142 / 150)  # looks good, means nothing
    assert knn_loo_accuracy(scattered, y, balanced=True) == pytest.approx(0.5)
    assert knn_loo_accuracy(grouped, y, balanced=True) > 0.9
    assert label_margin(grouped, y) > label_margin(scattered, y) + 0.3
