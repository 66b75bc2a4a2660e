"""Self-supervised pretraining of the light-curve transformer: masked reconstruction of whole epochs (+ contrast).

Each step hides a random ~``mask_fraction`` of each curve's *epochs* (all bands observed within
``epoch_window`` days, :func:`~explorer.models.lightcurve_batch.epoch_mask`) and regresses their normalised
magnitudes (mean squared error over hidden points), as ASTROMER does per point (Donoso-Oliva et al. 2023).
Hiding whole epochs matters for surveys such as SDSS that take five bands within minutes: a hidden point could
otherwise be copied from another band of the same epoch.

With ``contrastive_weight`` > 0 a second term pulls together two views of each curve (another random subsample,
a fraction ``view_drop`` of its epochs dropped) against the other curves of the batch: NT-Xent (Chen et al.
2020) on a projection head of the pooled output. In each view the summary token is blanked with probability
``summary_dropout``, so the transformer must recognise a curve by the shape of its points, not by its colours.
After every epoch the pooled output's mean and standard deviation over (up to 4,096 of) the training curves are
stored in the model; the ``"standardised"`` fusion uses them (:meth:`LightCurveTransformer.forward`).

Training is deterministic given ``seed``: epoch ``k`` draws its order, subsamples, masks, time shifts and
dropout from seeds derived from ``(seed, k)``, so a run resumed from the checkpoint of epoch ``k`` equals an
uninterrupted run. The checkpoint (``save_checkpoint``) is rewritten after every epoch, with the AdamW state
in ``extra.safetensors``.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from explorer.errors import ModelError
from explorer.models.checkpoints import load_checkpoint, load_extra_tensors, save_checkpoint
from explorer.models.lightcurve_batch import (
    UNKNOWN_BAND,
    PreparedLightCurves,
    collate,
    drop_epochs,
    epoch_mask,
    order_bands,
    prepare_lightcurves,
)
from explorer.models.lightcurve_encoder import (
    ARCHITECTURE,
    LightCurveEncoderConfig,
    LightCurveTransformer,
    checkpoint_config,
)
from explorer.progress import progress_bar

#: Config keys that may differ when resuming (they do not change the model's shape or meaning).
_RESUMABLE_KEYS = {
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "mask_fraction",
    "max_time_shift",
    "unknown_band_rate",
    "dropout",
    "contrastive_weight",
    "temperature",
    "view_drop",
    "summary_dropout",
}


def _as_config(config: LightCurveEncoderConfig | dict | None, df: pd.DataFrame) -> LightCurveEncoderConfig:
    if isinstance(config, LightCurveEncoderConfig):
        cfg = replace(config, bands=list(config.bands))
    else:
        cfg = LightCurveEncoderConfig.from_dict(config)
    if not cfg.bands:
        if "band" not in df.columns:
            raise ModelError(
                "light curves have no 'band' column and the config has no bands; add one of them"
            )
        cfg.bands = order_bands(df["band"].astype(str).unique())
    cfg.validate()
    return cfg


def _fingerprint(prepared: PreparedLightCurves) -> str:
    h = hashlib.sha256()
    h.update("\n".join(map(str, prepared.ids)).encode())
    h.update(prepared.counts.tobytes())
    return h.hexdigest()[:16]


def _fit_summary_stats(model: LightCurveTransformer, summary: np.ndarray) -> None:
    """Set the summary standardisation (mean, std over curves where each statistic exists)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nan_to_num(np.nanmean(summary, axis=0), nan=0.0)
        std = np.nan_to_num(np.nanstd(summary, axis=0), nan=1.0)
    model.summary_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
    model.summary_std.copy_(torch.as_tensor(np.maximum(std, 1e-3), dtype=torch.float32))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Flatten an optimizer's per-parameter state to ``{"optim.<i>.<key>": tensor}`` for safetensors."""
    out = {}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optim.{i}.{key}"] = torch.as_tensor(value)
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`optimizer_tensors` (hyper-parameters stay those of ``optimizer``)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, i, key = name.split(".", 2)
        state.setdefault(int(i), {})[key] = value
    sd = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def _lr_at(step: int, total: int, cfg: LightCurveEncoderConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of ``lr`` at ``total`` steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def _resume_state(
    out_dir: Path, cfg: LightCurveEncoderConfig, fingerprint: str
) -> tuple[dict, dict, dict] | None:
    """(state_dict, optimizer tensors, training info) of an existing checkpoint compatible with ``cfg``."""
    if not (out_dir / "config.json").is_file():
        return None
    state, saved = load_checkpoint(out_dir, architecture=ARCHITECTURE)
    mine = cfg.to_dict()
    differ = [k for k, v in mine.items() if k not in _RESUMABLE_KEYS and saved.get(k) != v]
    if differ:
        raise ModelError(
            f"{out_dir} holds a checkpoint with other settings ({differ[0]}: {saved.get(differ[0])!r} "
            f"vs {mine[differ[0]]!r}); pass resume=False to overwrite it or choose another out_dir"
        )
    info = saved.get("training", {})
    if info.get("data_fingerprint") not in (None, fingerprint):
        warnings.warn(
            f"{out_dir}: resuming on light curves that differ from those it was trained on", stacklevel=3
        )
    return state, load_extra_tensors(out_dir), info


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss (Chen et al. 2020) of paired unit vectors ``a``, ``b`` ``(n, k)``: each row's positive is
    its pair, the other ``2n - 2`` rows are negatives."""
    z = torch.cat([a, b], dim=0)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return torch.nn.functional.cross_entropy(sim, target)


def _train_step(model, optimizer, batch, hidden, cfg, views=None) -> float:
    """One optimiser step on masked reconstruction (+ the contrastive term when ``views`` is given).

    ``views``: ``(second view, blank_summary first view, blank_summary second view)``.
    """
    if views is None:
        pred = model.reconstruct(batch, hidden)
        loss = torch.mean((pred[hidden] - batch.value[hidden]) ** 2)
    else:
        view, blank_a, blank_b = views
        tokens, pooled, _ = model.encode(batch, hidden, blank_summary=blank_a)
        pred = model.recon_head(tokens + model.context_proj(pooled)[:, None, :]).squeeze(-1)
        loss = torch.mean((pred[hidden] - batch.value[hidden]) ** 2) if bool(hidden.any()) else pred.sum() * 0
        a = torch.nn.functional.normalize(model.contrast_head(pooled), dim=-1)
        b = model.contrast(view, blank_summary=blank_b)
        loss = loss + cfg.contrastive_weight * nt_xent(a, b, cfg.temperature)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


def _contrastive_views(prepared, rows, cfg, rng: np.random.Generator, device):
    """Second view of the curves ``rows`` and the summary-blanking flags of both views (see module docstring)."""
    view = drop_epochs(collate(prepared, rows, max_len=cfg.max_len, rng=rng), cfg.view_drop, rng)
    view = _augment(view, cfg, rng)
    blank = torch.from_numpy(rng.random((2, len(rows))) < cfg.summary_dropout).to(device)
    return view.to(device), blank[0], blank[1]


@torch.no_grad()
def fit_pooled_stats(model: LightCurveTransformer, prepared: PreparedLightCurves, seed: int = 0) -> None:
    """Store the mean and std of the pooled output over up to 4,096 training curves (for the fusion)."""
    if not hasattr(model, "pooled_mean") or len(prepared) == 0:
        return
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(prepared), size=min(len(prepared), 4096), replace=False))
    device = model.pooled_mean.device
    pooled = []
    for start in range(0, len(rows), 256):
        batch = collate(prepared, rows[start : start + 256], max_len=model.config.max_len).to(device)
        pooled.append(model.encode(batch)[1].float())
    pooled = torch.cat(pooled)
    model.pooled_mean.copy_(pooled.mean(0))
    if len(pooled) > 1:
        model.pooled_std.copy_(pooled.std(0, unbiased=False).clamp_min(1e-4))
    model.train(was_training)


def _augment(batch, cfg: LightCurveEncoderConfig, rng: np.random.Generator):
    """Random time offset per curve and a few points shown as the unknown band (in place)."""
    n, length = batch.band.shape
    batch.dt += torch.from_numpy(rng.uniform(0, cfg.max_time_shift, size=(n, 1)))
    drop = torch.from_numpy(rng.random((n, length)) < cfg.unknown_band_rate)
    batch.band[drop] = UNKNOWN_BAND
    return batch


def _run_epoch(
    model, optimizer, prepared, cfg, epoch, seed, step, total, device, progress
) -> tuple[float, int]:
    rng = np.random.default_rng([seed, epoch])
    torch.manual_seed(seed * 1_000_003 + epoch)
    model.train()
    order = rng.permutation(len(prepared))
    losses = []
    with progress_bar(
        range(0, len(order), cfg.batch_size),
        desc=f"pretrain epoch {epoch + 1}",
        unit="batch",
        disable=not progress,
        leave=False,
    ) as bar:
        for start in bar:
            rows = order[start : start + cfg.batch_size]
            batch = _augment(collate(prepared, rows, max_len=cfg.max_len, rng=rng), cfg, rng)
            hidden = epoch_mask(batch, cfg.mask_fraction, rng)
            contrastive = cfg.contrastive_weight > 0 and len(rows) > 1
            views = _contrastive_views(prepared, rows, cfg, rng, device) if contrastive else None
            step += 1
            if not hidden.any() and not contrastive:
                continue
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step - 1, total, cfg)
            losses.append(_train_step(model, optimizer, batch.to(device), hidden.to(device), cfg, views))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return (float(np.mean(losses)) if losses else float("nan")), step


def pretrain_lightcurves(
    lightcurves: pd.DataFrame,
    config: LightCurveEncoderConfig | dict | None = None,
    out_dir: Path | str = "lightcurve_encoder",
    *,
    epochs: int = 10,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = True,
    progress: bool = True,
) -> Path:
    """Pretrain the light-curve transformer by masked reconstruction of whole epochs; checkpoint every epoch.

    Parameters
    ----------
    lightcurves : DataFrame
        Long form ``id, time, mag|flux, err, band`` (no labels needed).
    config : LightCurveEncoderConfig or dict, optional
        Hyper-parameters; an empty band vocabulary is taken from the data (wavelength order).
    out_dir : Path
        Checkpoint folder (``model.safetensors``, ``config.json``, ``extra.safetensors`` with the optimizer).
    epochs : int
        Total epochs; a resumed run continues until this many are done.
    seed : int
        Seeds initialisation, batch order, subsampling, masks and dropout.
    device : str
        Torch device.
    resume : bool
        Continue from a compatible checkpoint in ``out_dir``; False overwrites it (with a warning).
    progress : bool
        Show tqdm bars.

    Returns
    -------
    Path
        ``out_dir``, holding the checkpoint after the last epoch.
    """
    out_dir = Path(out_dir)
    cfg = _as_config(config, lightcurves)
    prepared = prepare_lightcurves(
        lightcurves, cfg.bands, epoch_window=cfg.epoch_window, min_scale=cfg.min_scale
    )
    fingerprint = _fingerprint(prepared)
    torch.manual_seed(seed)
    model = LightCurveTransformer(cfg).to(device)
    _fit_summary_stats(model, prepared.summary)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    info = {"epochs_done": 0, "steps": 0, "loss_history": [], "seconds": 0.0}
    previous = _resume_state(out_dir, cfg, fingerprint) if resume else None
    if previous is not None:
        state, opt_tensors, info = previous
        model.load_state_dict(state)
        load_optimizer_tensors(optimizer, {k: v.to(device) for k, v in opt_tensors.items()})
        if info.get("seed", seed) != seed:
            warnings.warn(f"{out_dir}: resuming a run seeded {info['seed']} with seed={seed}", stacklevel=2)
    elif out_dir.exists():
        warnings.warn(f"{out_dir}: overwriting the existing checkpoint (resume=False)", stacklevel=2)
    steps_per_epoch = math.ceil(len(prepared) / cfg.batch_size)
    total = epochs * steps_per_epoch
    step = int(info.get("steps", 0))
    with progress_bar(
        range(int(info.get("epochs_done", 0)), epochs), desc="pretrain", unit="epoch", disable=not progress
    ) as bar:
        for epoch in bar:
            t0, c0 = time.perf_counter(), time.process_time()
            loss, step = _run_epoch(
                model, optimizer, prepared, cfg, epoch, seed, step, total, device, progress
            )
            fit_pooled_stats(model, prepared, seed)
            info = {
                "epochs_done": epoch + 1,
                "epochs": epochs,
                "steps": step,
                "seed": seed,
                "loss_history": [*info.get("loss_history", []), loss],
                "seconds": float(info.get("seconds", 0.0)) + time.perf_counter() - t0,
                "cpu_seconds": float(info.get("cpu_seconds", 0.0)) + time.process_time() - c0,
                "n_curves": len(prepared),
                "data_fingerprint": fingerprint,
                "device": str(device),
                "torch_threads": torch.get_num_threads(),
                "objective": "masked reconstruction of whole epochs"
                + (
                    f" + {cfg.contrastive_weight:g} x NT-Xent of two views"
                    if cfg.contrastive_weight > 0
                    else ""
                ),
            }
            save_checkpoint(
                out_dir,
                model,
                checkpoint_config(cfg, training=info),
                extra_tensors=optimizer_tensors(optimizer),
                overwrite=True,
            )
    if (
        previous is not None
        and int(info.get("epochs_done", 0)) >= epochs
        and step == int(previous[2].get("steps"))
    ):
        warnings.warn(
            f"{out_dir}: already trained for {info['epochs_done']} epochs; nothing to do "
            f"(ask for more epochs to continue)",
            stacklevel=2,
        )
    return out_dir
