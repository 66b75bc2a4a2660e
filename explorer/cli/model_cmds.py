"""Commands for models and vectors: pretrain, embed, import-vectors, finetune."""

from __future__ import annotations

from pathlib import Path

from explorer.errors import DataError
from explorer.scale import add_scheduler_option
from explorer.workspace import Workspace


def register(sub) -> None:
    """Add the ``pretrain``, ``embed``, ``import-vectors`` and ``finetune`` commands to ``sub``."""
    p = sub.add_parser("pretrain", help="self-supervised pretraining of an encoder on the workspace's data",
                       description="Pretrain an encoder on the workspace's own cutouts (contrastive, with "
                       "astronomy-aware augmentations) or light curves (masked reconstruction of whole epochs). "
                       "Checkpoints go to WS/checkpoints/NAME (safetensors + JSON); an interrupted run resumes.")
    p.add_argument("workspace", type=Path)
    p.add_argument("--modality", choices=("image", "lightcurve"), required=True)
    p.add_argument("--image-set", default=None, help="which image set (default: the largest)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--name", default=None, help="checkpoint name (default image-<set> or lightcurve)")
    p.add_argument("--restart", action="store_true", help="start afresh instead of resuming")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("embed", help="embed every object with the encoders (in process or on Dask)",
                       description="Embed every object: cutouts with an image encoder per image set, light curves "
                       "with the light-curve encoder, and a joint vector per object. Uses the workspace's own "
                       "checkpoints, else the shipped ones in assets/.")
    p.add_argument("workspace", type=Path)
    p.add_argument("--model", default=None, help="image checkpoint (name in WS/checkpoints, in assets/, or a path)")
    p.add_argument("--lightcurve-model", default=None, help="light-curve checkpoint, likewise")
    add_scheduler_option(p)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("import-vectors", help="use precomputed vectors (no model) as the embeddings",
                       description="Import precomputed vectors keyed by id: a Parquet/CSV/FITS table (id + emb_* "
                       "columns), an .npz with 'ids' and 'vectors', or HDF5 with the same datasets.")
    p.add_argument("workspace", type=Path)
    p.add_argument("file", type=Path)
    p.add_argument("--id-column", default="id")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("finetune", help="fine-tune on the labels people made, then re-embed",
                       description="Train on the workspace's labels (a head, or the head and the last encoder "
                       "blocks) with a loss that keeps the self-supervised structure, re-embed, re-map, re-score. "
                       "The previous versions stay in the workspace for comparison.")
    p.add_argument("workspace", type=Path)
    p.add_argument("--head-only", action="store_true", help="train only a head on frozen features")
    p.add_argument("--head-weight", type=float, default=None,
                   help="head-only: weight of the label-aware block against the self-supervised embedding "
                   "(default 2; larger pulls labelled classes further apart, 0 leaves the embedding as it was)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_finetune)


def cmd_pretrain(args) -> int:
    """``explorer pretrain``: pretrain an image or light-curve encoder on the workspace's data."""
    from explorer.models.registry import record_training_data

    ws = Workspace.open(args.workspace)
    cat = ws.catalog
    if args.modality == "image":
        from explorer.models.image_encoder import ImageModelConfig
        from explorer.models.train_image import ImagePretrainConfig, pretrain_images

        if not cat.images:
            raise DataError(f"{ws.path}: no cutouts to pretrain on; ingest images first")
        name = args.image_set or max(cat.images, key=lambda n: len(cat.images[n]))
        if name not in cat.images:
            raise DataError(f"no image set {name!r}; have {sorted(cat.images)}")
        store = cat.images[name]
        out = ws.checkpoint_dir(args.name or f"image-{name}")
        config = ImagePretrainConfig(model=ImageModelConfig(bands=len(store.bands)))
        pretrain_images(store.array, config, out, epochs=args.epochs, seed=args.seed, device=args.device,
                        resume=not args.restart)
        record_training_data(out, image_set=name, workspace=str(ws.path), objects=len(store))
    else:
        from explorer.models.train_lightcurve import pretrain_lightcurves

        if cat.lightcurves is None:
            raise DataError(f"{ws.path}: no light curves to pretrain on; ingest some first")
        out = ws.checkpoint_dir(args.name or "lightcurve")
        pretrain_lightcurves(cat.lightcurves.table, None, out, epochs=args.epochs, seed=args.seed,
                             device=args.device, resume=not args.restart)
        record_training_data(out, workspace=str(ws.path), objects=len(cat.lightcurves))
    print(f"checkpoint saved in {out}; now run `explorer embed {ws.path}`")
    return 0


def cmd_embed(args) -> int:
    """``explorer embed``: embed every object of the workspace and save the embeddings as a new version."""
    from explorer.models.embed import embed_workspace

    ws = Workspace.open(args.workspace)
    version = embed_workspace(ws, image_model=args.model, lightcurve_model=args.lightcurve_model,
                              scheduler=args.scheduler, device=args.device)
    meta = ws.versions("embeddings")[version]
    spaces = ", ".join(f"{s} {v['n']}×{v['dim']}" for s, v in meta["spaces"].items())
    print(f"embeddings {version}: {spaces}")
    return 0


def cmd_import(args) -> int:
    """``explorer import-vectors``: import precomputed vectors as the workspace's embeddings."""
    from explorer.models.embed import import_vectors

    ws = Workspace.open(args.workspace)
    version = import_vectors(ws, args.file, id_column=args.id_column)
    print(f"imported {ws.versions('embeddings')[version]['spaces']['joint']['n']} vectors as {version}")
    return 0


def cmd_finetune(args) -> int:
    """``explorer finetune``: fine-tune on the labels, re-embed, then recompute the map and scores."""
    from explorer.models.finetune import FinetuneConfig, finetune_workspace
    from explorer.pipeline import run_steps

    ws = Workspace.open(args.workspace)
    config = FinetuneConfig()
    if args.head_weight is not None:
        if args.head_weight < 0:
            raise DataError(f"--head-weight {args.head_weight}: give a weight of 0 or more (default 2)")
        if not args.head_only:
            raise DataError("--head-weight applies to --head-only fine-tuning; add --head-only or drop it")
        config.head_weight = args.head_weight
    version = finetune_workspace(ws, head_only=args.head_only, epochs=args.epochs, seed=args.seed,
                                 device=args.device, config=config)
    run_steps(ws)
    print(f"fine-tuned embeddings {version}; map and scores recomputed (previous versions kept)")
    return 0
