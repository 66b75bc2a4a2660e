"""The light-curve transformer (after ASTROMER), its checkpoint architecture, and the :class:`Encoder` wrapper.

Model (:class:`LightCurveTransformer`, architecture name ``"lightcurve-transformer"``), in the spirit of ASTROMER
(Donoso-Oliva et al. 2023, A&A 670, A54):

* one token per observation: ``Linear([value, err, hidden_flag]) + band_embedding[band] + time_encoding(t - t0)``,
  where ``value``/``err`` are the per-band-median-subtracted magnitudes scaled by one amplitude per curve
  (:mod:`explorer.models.lightcurve_batch`), ``t0`` the curve's first time, and the time encoding continuous
  sinusoids at periods log-spaced between ``min_period`` and ``max_period`` days (no folding, no period given);
* one extra *summary token* built from the curve's colours and amplitudes, so attention can condition the
  shape on them; band index 0 is the "unknown band" token used for bands outside the vocabulary (with a warning);
* a pre-norm transformer encoder with a padding mask; curves longer than ``max_len`` are subsampled
  (random in training, evenly spaced at inference);
* embedding (``fusion="standardised"``, the default) = L2-normalise( concat( mean-pooled projection of the
  tokens standardised by its training-set mean and std / sqrt(pooled_dim), ``summary_weight`` * standardised
  summary statistics / sqrt(n_summary), ``anchor`` ) ): both blocks have unit expected norm, so shape and
  colour/amplitude weigh alike under cosine similarity, and the constant anchor stops the final normalisation
  from distorting the distances. The summary block carries the colours and amplitudes that the per-curve
  normalisation strips (:data:`~explorer.models.lightcurve_batch.SUMMARY_DOC`); missing bands take the training
  mean. Total length ``embedding_dim``. First-version checkpoints (``fusion="concat"``) still load.

Pretraining (:mod:`explorer.models.train_lightcurve`) reconstructs the values of hidden *epochs*, optionally
with a contrastive term between two subsamplings of each curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from explorer.errors import ModelError
from explorer.models.base import l2_normalise
from explorer.models.checkpoints import build_from_checkpoint, load_checkpoint, register_architecture
from explorer.models.lightcurve_batch import (
    LightCurveBatch,
    collate,
    prepare_lightcurves,
    summary_names,
)
from explorer.progress import progress_bar

ARCHITECTURE = "lightcurve-transformer"
#: Ways to join the pooled transformer output and the summary statistics (see ``LightCurveTransformer.forward``).
FUSIONS = ("standardised", "concat")
#: Output size of the contrastive projection head.
CONTRAST_DIM = 64


@dataclass
class LightCurveEncoderConfig:
    """Hyper-parameters of the light-curve encoder and its pretraining (stored in the checkpoint's config).

    Model: ``d_model``, ``n_layers``, ``n_heads``, ``d_ff``, ``dropout``, ``embedding_dim`` (total output length,
    including the ``len(summary_names(bands))`` summary dims), ``summary_weight`` (norm share of the summary
    block; 0 leaves it out of the similarity), ``min_period``/``max_period`` (days, range of the time encoding),
    ``bands`` (vocabulary; empty = taken from the training data).
    Data: ``max_len`` (points per curve: 128 embeds ~1,100 curves/s per CPU thread and scored as well on the
    RR Lyrae benchmark as 200), ``epoch_window`` (days), ``min_scale`` (mag). ``n_heads`` 2 (32-dim heads) ran
    ~20% faster than 4 on CPU.
    Training: ``batch_size``, ``lr``, ``weight_decay``, ``warmup_steps``, ``mask_fraction`` (of epochs hidden),
    ``max_time_shift`` (days, random offset added to ``t - t0``; default 0: with absolute sinusoidal
    encodings a 1,000-day shift stopped a small model from learning in 200 steps, measured),
    ``unknown_band_rate`` (fraction of points shown with the "unknown band" token, so that token is trained
    for bands outside the vocabulary).
    Fusion: ``fusion`` ``"standardised"`` (default) standardises the pooled transformer output with statistics
    of the training set, places it beside the standardised summary statistics and a constant ``anchor``, then
    L2-normalises (see :meth:`LightCurveTransformer.forward`); ``"concat"`` is the first version's
    ``unit(pooled) + summary`` (checkpoints without a ``fusion`` key load as ``"concat"``).
    Contrastive term (``contrastive_weight`` > 0): NT-Xent (Chen et al. 2020, SimCLR) at ``temperature``
    between two subsamplings of each curve, each dropping a fraction ``view_drop`` of its epochs, with the summary
    token blanked with probability ``summary_dropout`` per view (so curves cannot be told apart by their summary
    token alone).
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    embedding_dim: int = 128
    summary_weight: float = 1.0
    min_period: float = 0.05
    max_period: float = 5000.0
    bands: list[str] = field(default_factory=list)
    max_len: int = 128
    epoch_window: float = 0.05
    min_scale: float = 0.01
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    mask_fraction: float = 0.3
    max_time_shift: float = 0.0
    unknown_band_rate: float = 0.05
    fusion: str = "standardised"
    anchor: float = 1.0
    contrastive_weight: float = 0.0
    temperature: float = 0.2
    view_drop: float = 0.3
    summary_dropout: float = 0.5

    @classmethod
    def from_dict(cls, d: dict | None) -> LightCurveEncoderConfig:
        """Build from a dict, ignoring keys that are not hyper-parameters (checkpoint metadata)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    def to_dict(self) -> dict:
        """Every hyper-parameter as a plain dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @property
    def n_summary(self) -> int:
        """Number of summary statistics in the embedding for :attr:`bands` (see :func:`summary_names`)."""
        return len(summary_names(self.bands))

    @property
    def pooled_dim(self) -> int:
        """Length of the transformer block of the embedding (the rest: summary statistics, anchor)."""
        return self.embedding_dim - self.n_summary - (1 if self.fusion == "standardised" else 0)

    def validate(self) -> None:
        """Raise :class:`ModelError` on inconsistent values."""
        if not self.bands:
            raise ModelError(
                "light-curve encoder config has no band vocabulary; set bands=[...] or pretrain on data"
            )
        if self.pooled_dim < 8:
            raise ModelError(
                f"embedding_dim={self.embedding_dim} leaves {self.pooled_dim} dims after the "
                f"{self.n_summary} summary statistics; use embedding_dim >= {self.n_summary + 8}"
            )
        if self.fusion not in FUSIONS:
            raise ModelError(f"fusion={self.fusion!r} is not known; use one of {list(FUSIONS)}")
        if self.contrastive_weight > 0 and self.fusion != "standardised":
            raise ModelError(
                f"contrastive_weight={self.contrastive_weight} needs fusion='standardised' (it has the "
                f"projection head), not {self.fusion!r}"
            )
        if self.d_model % self.n_heads or self.d_model % 2:
            raise ModelError(f"d_model={self.d_model} must be even and divisible by n_heads={self.n_heads}")


class TimeEncoding(nn.Module):
    """Continuous sinusoidal encoding of time offsets: ``(n, L)`` float64 days -> ``(n, L, d)`` float32.

    Periods are log-spaced between ``min_period`` and ``max_period`` (ASTROMER uses the transformer's
    ``1/10000^(2i/d)`` frequencies; days need a physical range). Phases are computed in float64.
    """

    def __init__(self, d_model: int, min_period: float, max_period: float) -> None:
        super().__init__()
        periods = torch.logspace(
            math.log10(min_period), math.log10(max_period), d_model // 2, dtype=torch.float64
        )
        self.register_buffer("omega", 2 * math.pi / periods, persistent=False)

    def forward(self, dt: Tensor) -> Tensor:
        """Encode time offsets ``dt`` ``(n, L)`` (days) as ``(n, L, d_model)`` float32 (sines, cosines)."""
        phase = dt.to(torch.float64)[..., None] * self.omega
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1).float()


class EncoderBlock(nn.Module):
    """Pre-norm transformer block (Vaswani et al. 2017) on ``(n, L, d)`` with a key padding mask.

    Uses :func:`torch.nn.functional.scaled_dot_product_attention`, several times faster on CPU than
    ``nn.TransformerEncoderLayer``'s fast path with a padding mask (measured: its masked softmax took 63% of
    the time).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        """``x`` ``(n, L, d)``, ``keep`` bool ``(n, L)`` (False = padding) -> ``(n, L, d)``."""
        n, length, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x)).view(n, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        )
        mask = None
        if not bool(keep.all()):  # batches of equal-length curves skip the mask (2-3x faster in bf16)
            mask = keep[:, None, None, :]
            if q.dtype == torch.bfloat16:  # CPU flash attention with a mask is slow in bf16; fp32 is not
                q, k, v = q.float(), k.float(), v.float()
        a = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask
        )  # no attention dropout: 30% slower
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(n, length, d).to(x.dtype)))
        return x + self.drop(self.ff(self.norm2(x)))


class LightCurveTransformer(nn.Module):
    """Transformer over (time, value, error, band) tokens plus one summary token; see the module docstring.

    Parameters
    ----------
    config : LightCurveEncoderConfig
    """

    def __init__(self, config: LightCurveEncoderConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.d_model
        n_s = config.n_summary
        self.time_encoding = TimeEncoding(d, config.min_period, config.max_period)
        self.point_proj = nn.Linear(3, d)
        self.band_embedding = nn.Embedding(len(config.bands) + 1, d)  # index 0: unknown band
        self.summary_proj = nn.Linear(2 * n_s, d)
        self.blocks = nn.ModuleList(
            EncoderBlock(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.pool_proj = nn.Linear(d, config.pooled_dim)
        self.context_proj = nn.Linear(config.pooled_dim, d)
        self.recon_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        self.register_buffer("summary_mean", torch.zeros(n_s))
        self.register_buffer("summary_std", torch.ones(n_s))
        if config.fusion == "standardised":
            p = config.pooled_dim
            self.contrast_head = nn.Sequential(nn.Linear(p, p), nn.GELU(), nn.Linear(p, CONTRAST_DIM))
            self.register_buffer("pooled_mean", torch.zeros(p))
            self.register_buffer("pooled_std", torch.ones(p))

    # -- pieces ------------------------------------------------------------------------------------------
    def standardise_summary(self, summary: Tensor) -> tuple[Tensor, Tensor]:
        """``(n, n_s)`` raw -> standardised (0 where missing, clipped to +-5) and the present flags."""
        present = torch.isfinite(summary)
        z = (summary - self.summary_mean) / self.summary_std
        z = torch.where(present, z, torch.zeros_like(z)).clamp(-5, 5)
        return z, present.float()

    def encode(
        self, batch: LightCurveBatch, hidden: Tensor | None = None, blank_summary: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the transformer.

        Parameters
        ----------
        batch : LightCurveBatch
            ``(n, L)`` tensors.
        hidden : Tensor bool ``(n, L)``, optional
            Points whose value/error are hidden from the model (masked reconstruction).
        blank_summary : Tensor bool ``(n,)``, optional
            Curves whose summary token is shown as "all statistics missing" (contrastive views).

        Returns
        -------
        tokens : Tensor ``(n, L, d)``
            Final point states (the summary token dropped).
        pooled : Tensor ``(n, pooled_dim)``
            Projection of the mean of visible point states and the summary token.
        summary : Tensor ``(n, n_s)``
            Standardised summary statistics.
        """
        hidden = torch.zeros_like(batch.mask) if hidden is None else hidden
        flag = hidden.float()
        vals = torch.stack([batch.value * (1 - flag), batch.err * (1 - flag), flag], dim=-1)
        x = self.point_proj(vals) + self.band_embedding(batch.band) + self.time_encoding(batch.dt)
        z_sum, present = self.standardise_summary(batch.summary)
        z_in, present_in = z_sum, present
        if blank_summary is not None:
            keep_summary = (~blank_summary).to(z_sum.dtype)[:, None]
            z_in, present_in = z_sum * keep_summary, present * keep_summary
        s_tok = self.summary_proj(torch.cat([z_in, present_in], dim=-1))[:, None, :]
        x = torch.cat([s_tok, x], dim=1)
        keep = torch.cat([torch.ones_like(batch.mask[:, :1]), batch.mask], dim=1)
        for block in self.blocks:
            x = block(x, keep)
        h = self.norm(x)
        visible = torch.cat([torch.ones_like(batch.mask[:, :1]), batch.mask & ~hidden], dim=1).to(h.dtype)
        mean = (h * visible[..., None]).sum(1) / visible.sum(1, keepdim=True)
        return h[:, 1:], self.pool_proj(mean), z_sum

    def reconstruct(self, batch: LightCurveBatch, hidden: Tensor) -> Tensor:
        """Predicted normalised values ``(n, L)`` for every point (the loss uses the hidden ones)."""
        tokens, pooled, _ = self.encode(batch, hidden)
        return self.recon_head(tokens + self.context_proj(pooled)[:, None, :]).squeeze(-1)

    def contrast(self, batch: LightCurveBatch, blank_summary: Tensor | None = None) -> Tensor:
        """Projections for the contrastive loss, ``(n, CONTRAST_DIM)``, L2-normalised."""
        _, pooled, _ = self.encode(batch, blank_summary=blank_summary)
        return nn.functional.normalize(self.contrast_head(pooled), dim=-1)

    def forward(self, batch: LightCurveBatch) -> Tensor:
        """Embeddings ``(n, embedding_dim)``, L2-normalised.

        ``fusion="standardised"``: ``normalise([(pooled - mean) / std / sqrt(pooled_dim), summary_weight *
        z / sqrt(n_summary), anchor])``, with the pooled mean and std of the training set and ``z`` the
        standardised summary statistics. Each block then has unit expected squared norm, so cosine similarity
        weighs shape (pooled) and colour/amplitude (summary) alike; the constant ``anchor`` keeps the final
        normalisation from rescaling curves with extreme statistics (without it, cosine similarity of the summary
        block alone scored 0.954 on RR Lyrae ab/c where Euclidean distance scored 0.971; anchor 1: 0.969, 3: 0.971).
        ``fusion="concat"`` (first version): ``normalise([unit(pooled), summary_weight * z / sqrt(n_summary)])``.
        """
        _, pooled, z_sum = self.encode(batch)
        w = self.config.summary_weight / math.sqrt(z_sum.shape[1])
        if self.config.fusion == "concat":
            pooled = nn.functional.normalize(pooled.float(), dim=-1)
            return nn.functional.normalize(torch.cat([pooled, w * z_sum.float()], dim=-1), dim=-1)
        p = (pooled.float() - self.pooled_mean) / self.pooled_std / math.sqrt(pooled.shape[1])
        anchor = torch.full_like(p[:, :1], self.config.anchor)
        return nn.functional.normalize(torch.cat([p, w * z_sum.float(), anchor], dim=-1), dim=-1)


@register_architecture(ARCHITECTURE)
def build_lightcurve_transformer(config: dict) -> LightCurveTransformer:
    """Checkpoint factory: an untrained :class:`LightCurveTransformer` from a checkpoint's config dict.

    A config without ``fusion`` comes from the first version and is built with ``fusion="concat"``.
    """
    return LightCurveTransformer(LightCurveEncoderConfig.from_dict({"fusion": "concat", **(config or {})}))


def checkpoint_config(config: LightCurveEncoderConfig, **extra) -> dict:
    """The dict saved as ``config.json``: hyper-parameters plus architecture/modality/embedding_dim."""
    return {
        **config.to_dict(),
        "architecture": ARCHITECTURE,
        "modality": "lightcurve",
        "embedding_dim": config.embedding_dim,
        "summary_names": summary_names(config.bands),
        **extra,
    }


def _bf16_available() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class LightCurveEncoder:
    """A :class:`LightCurveTransformer` seen as an :class:`~explorer.models.base.Encoder` over long-form tables.

    Parameters
    ----------
    module : LightCurveTransformer
    name : str
        Recorded with the embeddings (``"lightcurve-transformer@<sha8>"`` from a checkpoint).
    device : str
    batch_size : int
        Curves per forward pass.
    precision : {"fp32", "bf16", "auto"}
        ``bf16`` runs under bfloat16 autocast; ``auto`` uses it on CPUs with native bf16. Default float32: on
        the 2-core AVX-512/AMX machine this was built on, bf16 was no faster for this small model (+-10% with
        one thread, 20% slower with two; d_model 64, L 128), unlike the CNN of RECIPES.md.
    max_len : int, optional
        Points per curve at inference (evenly spaced subsample); default the checkpoint's ``max_len``. Fewer
        points embed faster (attention costs grow with its square) at some loss of detail.
    workers : int, optional
        CPU only: batches embedded at once, each by one Python thread running torch on one intra-op thread
        (torch's kernels release the GIL). Default ``torch.get_num_threads()``. For this small model, one torch
        thread per batch used half the CPU time per curve of two intra-op threads on one batch (measured on the
        shared 2-core machine: ~1,000 vs ~500 curves per CPU-second). The vectors do not depend on it.
    """

    modality = "lightcurve"

    def __init__(
        self,
        module: LightCurveTransformer,
        name: str = ARCHITECTURE,
        device: str = "cpu",
        batch_size: int = 256,
        precision: str = "fp32",
        max_len: int | None = None,
        workers: int | None = None,
    ) -> None:
        if precision not in ("auto", "bf16", "fp32"):
            raise ModelError(f"precision {precision!r} is not known; use 'auto', 'bf16' or 'fp32'")
        self.module = module.eval().to(device)
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.max_len = max_len
        self.workers = workers

    @classmethod
    def from_checkpoint(cls, directory: Path | str, **kwargs) -> LightCurveEncoder:
        """Load a checkpoint folder written by :func:`explorer.models.train_lightcurve.pretrain_lightcurves`."""
        _, config = load_checkpoint(Path(directory), architecture=ARCHITECTURE)
        module = build_from_checkpoint(Path(directory), architecture=ARCHITECTURE)
        return cls(module, name=f"{ARCHITECTURE}@{config['weights_sha256'][:8]}", **kwargs)

    @property
    def config(self) -> LightCurveEncoderConfig:
        """The hyper-parameters of the wrapped module."""
        return self.module.config

    @property
    def embedding_dim(self) -> int:
        """Length of each embedding vector."""
        return self.config.embedding_dim

    @property
    def bands(self) -> list[str]:
        """The band vocabulary of the encoder (a copy)."""
        return list(self.config.bands)

    def _n_workers(self) -> int:
        if torch.device(self.device).type != "cpu":
            return 1
        return max(1, int(self.workers if self.workers is not None else torch.get_num_threads()))

    def _autocast(self):
        use = self.precision == "bf16" or (
            self.precision == "auto" and self.device == "cpu" and _bf16_available()
        )
        return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16, enabled=use)

    @torch.inference_mode()
    def embed(
        self, batch: pd.DataFrame, ids: Sequence | None = None, *, progress: bool = False
    ) -> np.ndarray:
        """Embed the curves of a long-form table: ``(n_ids, embedding_dim)`` float32, rows L2-normalised.

        Parameters
        ----------
        batch : DataFrame
            Long form ``id, time, mag|flux, err, band``.
        ids : sequence, optional
            Which curves and in which row order; default every id in order of first appearance.
        progress : bool
            Show a tqdm bar over batches.

        Raises
        ------
        DataError
            Missing columns, or an id with no finite point.
        """
        cfg = self.config
        prepared = prepare_lightcurves(
            batch, cfg.bands, ids=ids, epoch_window=cfg.epoch_window, min_scale=cfg.min_scale
        )
        out = np.empty((len(prepared), cfg.embedding_dim), np.float32)
        order = np.argsort(prepared.counts, kind="stable")  # similar lengths together: little padding
        workers = self._n_workers()
        # batches depend on the data only, never on the thread count, so every way of running (threads here,
        # single-thread Dask workers) pads and multiplies the same tensors and gives bit-identical vectors
        size = self.batch_size
        chunks = [order[i : i + size] for i in range(0, len(order), size)]

        def run(rows: np.ndarray) -> None:
            with self._autocast(), torch.inference_mode():
                b = collate(prepared, rows, max_len=self.max_len or cfg.max_len).to(self.device)
                out[rows] = self.module(b).float().cpu().numpy()

        with progress_bar(
            total=len(chunks), desc="embed light curves", unit="batch", disable=not progress
        ) as bar:
            if workers > 1 and len(chunks) > 1:
                _threaded(run, chunks, workers, bar)
            else:
                for rows in chunks:
                    run(rows)
                    bar.update()
        if not np.isfinite(out).all():
            raise ModelError(f"encoder {self.name!r} produced NaN/inf embeddings; check the light curves")
        return l2_normalise(out)


def _threaded(run, chunks: list[np.ndarray], workers: int, bar) -> None:
    """Call ``run(rows)`` for every chunk on ``workers`` Python threads, torch limited to one intra-op thread
    meanwhile (restored afterwards)."""
    from concurrent.futures import ThreadPoolExecutor

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for _ in pool.map(run, chunks):
                bar.update()
    finally:
        torch.set_num_threads(before)


def embed_lightcurves(
    encoder: LightCurveEncoder,
    df: pd.DataFrame,
    batch_size: int = 256,
    *,
    ids: Sequence | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed a long-form light-curve table with ``encoder``: ``(n_ids, d)`` float32 in the order of ``ids``."""
    if batch_size != encoder.batch_size:
        encoder = LightCurveEncoder(
            encoder.module,
            encoder.name,
            encoder.device,
            batch_size,
            encoder.precision,
            encoder.max_len,
            encoder.workers,
        )
    return encoder.embed(df, ids=ids, progress=progress)


def load_lightcurve_encoder(directory: Path | str, **kwargs) -> LightCurveEncoder:
    """Shortcut for :meth:`LightCurveEncoder.from_checkpoint`."""
    return LightCurveEncoder.from_checkpoint(directory, **kwargs)
