"""Pretrain the light-curve encoder (masked reconstruction of whole epochs) and optionally ship the checkpoint.

Training data: simulated light curves (:mod:`explorer.data.simulate`, bands g, r) from ``--sim-objects``
catalogue rows (about a third have a light curve), plus, with ``--rrlyrae``, the 483 SDSS Stripe 82 RR Lyrae
curves (bands ugriz) read in place; no label or period is used. The checkpoint in ``--out`` is rewritten after
every epoch and a killed run resumes where it stopped. ``--ship`` copies the final weights and config (without
the optimizer state) to a folder such as ``assets/lightcurve_encoder``. With ``--snia`` the 2,289 ZTF SN Ia
curves (bands g, R) join the training set too.

The shipped checkpoint, and the best one on RR Lyrae (pretrained on those curves themselves, no labels):

    python benchmarks/pretrain_lightcurves.py --sim-objects 30000 --rrlyrae --epochs 8 --seed 0 --threads 1 \\
        --out benchmarks/out/lc_sim_rrl_v2 --ship assets/lightcurve_encoder --no-resume
    python benchmarks/pretrain_lightcurves.py --sim-objects 0 --rrlyrae --epochs 60 --seed 0 --threads 1 \\
        --out benchmarks/out/lc_rrl_v2_seed0 --no-resume
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from explorer.models.checkpoints import build_from_checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from explorer.models.lightcurve_encoder import LightCurveEncoderConfig  # noqa: E402
from explorer.models.train_lightcurve import pretrain_lightcurves  # noqa: E402

SNIA = Path("/work/shared/data/sdss_rrlyrae_ztf_snia_lightcurves/SNIa")
_SAVED_BY_CHECKPOINTS = ("created", "explorer_version", "weights_sha256", "extra_sha256")


def simulated(n_objects: int, seed: int) -> pd.DataFrame:
    """Light curves of the simulated survey's first ``n_objects`` catalogue rows (those that have one)."""
    from explorer.data.simulate import render_lightcurves, simulate_parameters

    params = simulate_parameters(n_objects, seed=seed)
    return render_lightcurves(params[params["has_lightcurve"]], seed=seed)[
        ["id", "time", "mag", "err", "band"]
    ]


def load_snia(folder: Path = SNIA) -> pd.DataFrame:
    """The 2,289 ZTF SN Ia light curves (bands g, R), long form ``id, time, mag, err, band``."""
    files = sorted((folder / "light-curves").glob("*.csv"))
    frames = [pd.read_csv(f).assign(id=f.stem) for f in files]
    lc = pd.concat(frames, ignore_index=True).rename(columns={"magerr": "err"})
    return lc[["id", "time", "mag", "err", "band"]]


def training_set(n_sim: int, rrlyrae: bool, seed: int, snia: bool = False) -> pd.DataFrame:
    frames = [simulated(n_sim, seed)] if n_sim > 0 else []
    if snia:
        if not (SNIA / "light-curves").is_dir():
            raise SystemExit(f"--snia: data not found at {SNIA}")
        lc = load_snia(SNIA)
        frames.append(lc.assign(id="ztf-snia-" + lc["id"].astype(str)))
    if rrlyrae:
        from bench_rrlyrae_knn import DATA, load_rrlyrae

        if not (DATA / "periods.csv").is_file():
            raise SystemExit(f"--rrlyrae: data not found at {DATA}")
        lc, _ = load_rrlyrae(DATA)
        frames.append(lc.assign(id="sdss-rrl-" + lc["id"].astype(str)))
    if not frames:
        raise SystemExit("no training data: give --sim-objects > 0 and/or --rrlyrae")
    return pd.concat(frames, ignore_index=True)


def ship(checkpoint: Path, dest: Path) -> Path:
    """Copy a checkpoint's weights and config, without the optimizer state, to ``dest``."""
    _, config = load_checkpoint(checkpoint)
    module = build_from_checkpoint(checkpoint)
    config = {k: v for k, v in config.items() if k not in _SAVED_BY_CHECKPOINTS}
    return save_checkpoint(dest, module, config, overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sim-objects", type=int, default=30000, help="simulated catalogue rows (default 30000)"
    )
    parser.add_argument(
        "--rrlyrae", action="store_true", help="also train on the SDSS RR Lyrae curves (no labels)"
    )
    parser.add_argument(
        "--snia", action="store_true", help="also train on the 2,289 ZTF SN Ia curves (no labels)"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: the cores are shared)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "lightcurve_pretrain")
    parser.add_argument("--ship", type=Path, help="copy the final checkpoint (no optimizer state) here")
    parser.add_argument(
        "--no-resume", action="store_true", help="start afresh even if --out has a checkpoint"
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides, e.g. n_layers=3 max_len=256 (see LightCurveEncoderConfig)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    defaults = LightCurveEncoderConfig().to_dict()
    config = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in defaults:
            raise SystemExit(f"--set {item}: unknown key {key!r}; known: {sorted(defaults)}")
        config[key] = type(defaults[key])(value) if not isinstance(defaults[key], list) else value.split(",")
    t0 = time.perf_counter()
    data = training_set(args.sim_objects, args.rrlyrae, args.seed, args.snia)
    print(
        f"training set: {data['id'].nunique()} curves, {len(data)} points, bands {sorted(data['band'].unique())} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    out = pretrain_lightcurves(
        data, config, args.out, epochs=args.epochs, seed=args.seed, resume=not args.no_resume
    )
    print(f"checkpoint: {out} ({time.perf_counter() - t0:.0f} s wall in this process)")
    if args.ship:
        print(f"shipped: {ship(out, args.ship)}")


if __name__ == "__main__":
    main()
