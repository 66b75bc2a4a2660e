"""kNN accuracy (RR Lyrae ab vs c) of self-supervised light-curve embeddings, beside classic features, plus speed.

Data: the 483 SDSS Stripe 82 RR Lyrae of Sesar et al. (2010) in
``/work/shared/data/sdss_rrlyrae_ztf_snia_lightcurves/RRLyrae`` (``--data`` elsewhere), read in place, never
copied. No label or period is given to the encoder; labels (``Type``: ab 379, c 104) only score the features:
k-nearest-neighbour accuracy (k=10; cosine for embeddings, Euclidean on standardised features for the
baselines), 5 stratified folds, repeated over ``--repeats`` shuffles (mean and spread of the repeats).

Rows: Lomb-Scargle period + amplitude (astropy; ~1.5 s per curve here, cached in ``benchmarks/out/``), plain
summary statistics (colours + log amplitudes), and for each checkpoint the full embedding, its transformer
block alone (``summary_weight=0``), a randomly initialised network of the same architecture, other summary
weights, and fewer points at inference (``--fast-max-len``). Then embedding throughput (curves/s,
preprocessing included; by wall clock and by this process's CPU time, since the machine may be shared) and
the checkpoint's recorded pretraining time.

    python benchmarks/bench_rrlyrae_knn.py [--checkpoint assets/lightcurve_encoder ...] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.models.lightcurve_batch import prepare_lightcurves  # noqa: E402
from explorer.models.lightcurve_encoder import (  # noqa: E402
    LightCurveEncoder,
    LightCurveTransformer,
    embed_lightcurves,
)
from explorer.models.lightcurve_features import lomb_scargle_features, summary_features  # noqa: E402
from explorer.models.train_lightcurve import fit_pooled_stats  # noqa: E402

DATA = Path("/work/shared/data/sdss_rrlyrae_ztf_snia_lightcurves/RRLyrae")
SNIA = DATA.parent / "SNIa"
DEFAULT_CHECKPOINT = ROOT / "assets" / "lightcurve_encoder"
CACHE = ROOT / "benchmarks" / "out"


def load_rrlyrae(folder: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long-form light curves (``id, time, mag, err, band``) and labels (index id; ``Type``, ``Per``)."""
    files = sorted((folder / "light-curves").glob("*.csv"))
    frames = [pd.read_csv(f).assign(id=f.stem) for f in files]
    lc = pd.concat(frames, ignore_index=True).rename(columns={"magerr": "err"})
    labels = pd.read_csv(folder / "periods.csv")
    labels.index = pd.Index(labels["Num"].astype(str), name="id")
    return lc[["id", "time", "mag", "err", "band"]], labels


def knn_accuracy(
    x: np.ndarray, y: np.ndarray, *, k: int = 10, folds: int = 5, repeats: int = 5, standardise: bool = False
) -> tuple[float, float]:
    """Mean and spread (std over repeats) of stratified k-fold kNN accuracy, cosine unless ``standardise``."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, np.float64)
    if standardise:
        x = np.where(np.isfinite(x), x, np.nanmean(x, axis=0))
    else:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    means = []
    for r in range(repeats):
        scores = []
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=r).split(x, y):
            clf = (
                make_pipeline(StandardScaler(), KNeighborsClassifier(k))
                if standardise
                else KNeighborsClassifier(k)
            )
            clf.fit(x[tr], y[tr])
            scores.append(float((clf.predict(x[te]) == y[te]).mean()))
        means.append(np.mean(scores))
    return float(np.mean(means)), float(np.std(means))


def ls_features_cached(lc: pd.DataFrame, ids: list[str], progress: bool) -> pd.DataFrame:
    """Lomb-Scargle features (slow: ~0.5 s per curve), cached under ``benchmarks/out/``."""
    path = CACHE / "rrlyrae_lomb_scargle.csv"
    if path.is_file():
        cached = pd.read_csv(path, index_col="id", dtype={"id": str})
        if set(ids) <= set(cached.index):
            return cached.loc[ids]
    feats = lomb_scargle_features(lc, ids, progress=progress)
    CACHE.mkdir(parents=True, exist_ok=True)
    feats.to_csv(path)
    return feats


def throughput(
    encoder: LightCurveEncoder, lc: pd.DataFrame, ids: list[str], rounds: int = 5
) -> tuple[float, float]:
    """Curves/s of :func:`embed_lightcurves` (preprocessing included), best of ``rounds``: by wall clock, and
    curves per second of this process's CPU time (all its threads); the second times the cores in use is what
    idle cores would give if the work scaled perfectly."""
    embed_lightcurves(encoder, lc, ids=ids[:64])  # warm-up
    wall, cpu = 0.0, 0.0
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        embed_lightcurves(encoder, lc, ids=ids)
        wall = max(wall, len(ids) / (time.perf_counter() - t0))
        cpu = max(cpu, len(ids) / (time.process_time() - c0))
    return wall, cpu


def load_snia(folder: Path = SNIA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ZTF SN Ia curves (long form; bands g, R) and their BTS rows (index ZTF id; ``redshift``, ``type``)."""
    files = sorted((folder / "light-curves").glob("*.csv"))
    lc = pd.concat([pd.read_csv(f).assign(id=f.stem) for f in files], ignore_index=True)
    lc = lc.rename(columns={"magerr": "err"})[["id", "time", "mag", "err", "band"]]
    bts = pd.read_csv(folder / "bts.csv").drop_duplicates("ZTFID").set_index("ZTFID")
    return lc, bts


def knn_spearman(x: np.ndarray, target: np.ndarray, *, k: int = 10, standardise: bool = False) -> float:
    """Spearman correlation of ``target`` with its 5-fold kNN prediction (mean over the k neighbours)."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, np.float64)
    if standardise:
        x = np.where(np.isfinite(x), x, np.nanmean(x, axis=0))
    pred = np.empty(len(target))
    for tr, te in KFold(5, shuffle=True, random_state=0).split(x):
        reg = KNeighborsRegressor(k)
        clf = make_pipeline(StandardScaler(), reg) if standardise else reg
        pred[te] = clf.fit(x[tr], target[tr]).predict(x[te])
    return float(spearmanr(pred, target).statistic)


def snia_rows(checkpoints: list[Path], folder: Path = SNIA) -> list[tuple]:
    """Second check on other data (ZTF SNe Ia, bands g and R): every curve embeds to a finite vector, and the
    10 nearest neighbours' mean redshift correlates with the redshift (Spearman), beside summary statistics."""
    import warnings

    lc, bts = load_snia(folder)
    ids = sorted(set(lc["id"]) & set(bts.index[np.isfinite(bts["redshift"])]))
    z = bts.loc[ids, "redshift"].to_numpy(float)
    summ = summary_features(lc, ids)
    rows = [
        ("summary: colours + log amplitudes", len(ids), 0, knn_spearman(summ.to_numpy(), z, standardise=True))
    ]
    for ckpt in checkpoints:
        enc = LightCurveEncoder.from_checkpoint(ckpt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # band R outside an ugriz vocabulary: the unknown-band token
            x = embed_lightcurves(enc, lc, ids=ids)
        bad = int((~np.isfinite(x).all(axis=1)).sum())
        rows.append((f"{ckpt.name}: embedding", len(ids), bad, knn_spearman(np.nan_to_num(x), z)))
    return rows


def _variants(enc: LightCurveEncoder, prepared=None) -> dict[str, LightCurveTransformer]:
    """The trained module, a random init of the same architecture, their transformer blocks alone, and the
    trained module with other summary weights. With the ``"standardised"`` fusion the random init's pooled
    statistics are fitted on ``prepared`` (the scored curves; no labels)."""
    info = enc.module.config
    with torch.random.fork_rng():
        torch.manual_seed(0)
        rand = LightCurveTransformer(replace(info, bands=list(info.bands)))
    rand.summary_mean.copy_(enc.module.summary_mean)
    rand.summary_std.copy_(enc.module.summary_std)
    if prepared is not None:
        fit_pooled_stats(rand, prepared)  # unsupervised, on the curves being scored
    out = {"embedding": enc.module, "random init": rand}
    for name, module, weight in (
        ("transformer block only", enc.module, 0.0),
        ("random init, transformer block only", rand, 0.0),
        ("embedding, summary_weight=0.5", enc.module, 0.5),
        ("embedding, summary_weight=2", enc.module, 2.0),
    ):
        variant = LightCurveTransformer(replace(info, bands=list(info.bands), summary_weight=weight))
        variant.load_state_dict(module.state_dict())
        out[name] = variant
    return out


def encoder_rows(
    checkpoint: Path,
    lc: pd.DataFrame,
    ids: list[str],
    y: np.ndarray,
    repeats: int,
    fast_len: int,
    speed: bool = True,
    knn: bool = True,
) -> tuple[list, list]:
    """kNN rows for one checkpoint (full, block only, random init; and at ``fast_len`` points) and speeds."""
    enc = LightCurveEncoder.from_checkpoint(checkpoint)
    info = enc.module.config
    tag = checkpoint.name
    rows = []
    prepared = prepare_lightcurves(
        lc, info.bands, ids=ids, epoch_window=info.epoch_window, min_scale=info.min_scale, warn_unknown=False
    )
    for label, module in _variants(enc, prepared).items() if knn else ():
        x = embed_lightcurves(LightCurveEncoder(module, name=label), lc, ids=ids)
        dims = info.pooled_dim if "block only" in label else x.shape[1]  # other blocks zeroed
        rows.append((f"{tag}: {label}", dims, *knn_accuracy(x, y, repeats=repeats)))
    fast = LightCurveEncoder(enc.module, name=enc.name, max_len=fast_len)
    intra = LightCurveEncoder(enc.module, name=enc.name, workers=1)
    if knn:
        x = embed_lightcurves(fast, lc, ids=ids)
        rows.append(
            (
                f"{tag}: embedding, inference max_len={fast_len}",
                x.shape[1],
                *knn_accuracy(x, y, repeats=repeats),
            )
        )
    training = json.loads((checkpoint / "config.json").read_text()).get("training", {})
    facts = []
    runs = [(enc, info.max_len), (intra, info.max_len), (fast, fast_len)]
    for e, max_len in runs if speed else ():
        wall, cpu = throughput(e, lc, ids)
        facts.append(
            {
                "checkpoint": str(checkpoint),
                "max_len": max_len,
                "workers": e._n_workers(),
                "torch_threads": torch.get_num_threads(),
                "curves_per_s": wall,
                "curves_per_s_cpu_time": cpu,
                "pretrain_seconds": training.get("seconds"),
                "pretrain_cpu_seconds": training.get("cpu_seconds"),
                "pretrain_epochs": training.get("epochs_done"),
                "pretrain_curves": training.get("n_curves"),
                "pretrain_threads": training.get("torch_threads"),
                "n_layers": info.n_layers,
                "d_model": info.d_model,
            }
        )
    return rows, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=[DEFAULT_CHECKPOINT])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=5, help="shuffles of the 5-fold split (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedding (default 2)")
    parser.add_argument("--fast-max-len", type=int, default=64, help="also embed with this many points")
    parser.add_argument("--no-lomb-scargle", action="store_true", help="skip the slow Lomb-Scargle baseline")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--snia",
        action="store_true",
        help="also check the checkpoints on the ZTF SNe Ia (redshift of neighbours)",
    )
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput measurement")
    parser.add_argument(
        "--speed-only", action="store_true", help="only the throughput (no kNN rows, no Lomb-Scargle)"
    )
    args = parser.parse_args()
    if not (args.data / "periods.csv").is_file():
        print(f"SKIP: RR Lyrae data not found at {args.data} (periods.csv + light-curves/); pass --data")
        return
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    lc, labels = load_rrlyrae(args.data)
    ids = sorted(set(lc["id"]) & set(labels.index))
    y = np.asarray(labels.loc[ids, "Type"].tolist(), dtype=str)

    rows = []
    if args.speed_only:
        args.no_lomb_scargle = True
    summ = summary_features(lc, ids)
    rows.append(
        (
            "summary: colours + log amplitudes",
            summ.shape[1],
            *knn_accuracy(summ.to_numpy(), y, repeats=args.repeats, standardise=True),
        )
    )
    if not args.no_lomb_scargle:
        ls = ls_features_cached(lc, ids, progress=True)
        rows.append(
            (
                "Lomb-Scargle: log period + log amplitude",
                2,
                *knn_accuracy(
                    ls[["log_period", "log_amp"]].to_numpy(), y, repeats=args.repeats, standardise=True
                ),
            )
        )
        both = np.c_[ls[["log_period", "log_amp"]].to_numpy(), summ.to_numpy()]
        rows.append(
            (
                "Lomb-Scargle + summary",
                both.shape[1],
                *knn_accuracy(both, y, repeats=args.repeats, standardise=True),
            )
        )
    speed = []
    for ckpt in args.checkpoint:
        if not (ckpt / "config.json").is_file():
            print(f"SKIP checkpoint {ckpt}: no config.json (run benchmarks/pretrain_lightcurves.py)")
            continue
        r, facts = encoder_rows(
            ckpt,
            lc,
            ids,
            y,
            args.repeats,
            args.fast_max_len,
            speed=not args.no_speed,
            knn=not args.speed_only,
        )
        rows += r
        speed += facts

    print(
        f"\nRR Lyrae ab ({int((y == 'ab').sum())}) vs c ({int((y == 'c').sum())}): kNN k=10, 5-fold x "
        f"{args.repeats} shuffles\n"
    )
    print(f"load average at the start: {load0:.1f}\n")
    print(f"{'features':<66} {'dims':>5} {'accuracy':>9} {'+-':>6}")
    for name, dims, acc, sd in rows:
        print(f"{name:<66} {dims:>5} {acc:>9.3f} {sd:>6.3f}")
    cpu = platform.processor() or platform.machine()
    print(
        f"\nembedding speed ({args.threads} torch threads, {os.cpu_count()} CPUs, {cpu}; "
        f"{len(ids)} curves of 78-645 points, preprocessing included; load average "
        f"{os.getloadavg()[0]:.1f}):"
    )
    for f in speed:
        print(
            f"  {f['checkpoint']} max_len={f['max_len']}, "
            + (
                f"{f['workers']} batches at once x 1 torch thread: "
                if f["workers"] > 1
                else f"1 batch at a time x {f['torch_threads']} torch threads: "
            )
            + f"{f['curves_per_s']:.0f} curves/s wall clock, {f['curves_per_s_cpu_time']:.0f} curves per CPU-second"
        )
    for f in speed[::3]:
        cpu_s = f["pretrain_cpu_seconds"]
        print(
            f"  pretraining {f['checkpoint']}: {f['pretrain_seconds'] or 0:.0f} s wall"
            f"{f', {cpu_s:.0f} s CPU' if cpu_s else ''}, {f['pretrain_epochs']} epochs on "
            f"{f['pretrain_curves']} curves, {f['pretrain_threads']} torch thread(s)"
        )
    snia = []
    if args.snia and (SNIA / "bts.csv").is_file():
        snia = snia_rows([c for c in args.checkpoint if (c / "config.json").is_file()])
        print(
            "\nZTF SNe Ia (second check): Spearman correlation of redshift with its 10-NN prediction, 5-fold"
        )
        print(f"{'features':<66} {'curves':>6} {'NaN rows':>8} {'Spearman':>9}")
        for name, n, bad, rho in snia:
            print(f"{name:<66} {n:>6} {bad:>8} {rho:>9.3f}")
    if args.json:
        out = {
            "snia": [dict(zip(("features", "curves", "nan_rows", "spearman"), r, strict=True)) for r in snia],
            "load_average_start": load0,
            "load_average_end": os.getloadavg(),
            "rows": [dict(zip(("features", "dims", "accuracy", "std"), r, strict=True)) for r in rows],
            "speed": speed,
            "threads": args.threads,
            "repeats": args.repeats,
        }
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
