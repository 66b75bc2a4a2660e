"""Build the tutorial notebooks (``notebooks/NN_*.ipynb``) from the Python source in this file, outputs stripped.

Edit the cells here, then run ``python notebooks/_build.py``; ``python notebooks/_build.py --check`` exits 1 when a
notebook on disk differs from this source (the notebook tests run the same check). Cell ids are fixed, so a
rebuild of unchanged source gives byte-identical files.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
#: Simulated objects in the demo workspace of notebook 01 (``explorer-demo`` beside the notebooks).
N_SIMULATED = 1000


def md(text: str) -> tuple[str, str]:
    """A markdown cell (indentation of the source removed)."""
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> tuple[str, str]:
    """A code cell (indentation of the source removed)."""
    return ("code", textwrap.dedent(text).strip("\n"))


# ----------------------------------------------------------------------------------------------------------------
# 01 quickstart
# ----------------------------------------------------------------------------------------------------------------
QUICKSTART = [
    md(f"""
    # Quickstart: explore the demo survey

    This notebook runs the whole explorer on the data that ships with it:

    1. open the **demo workspace**: 2,158 real radio galaxies from the FIRST survey plus {N_SIMULATED:,} objects of
       a simulated optical survey (g, r, i cutouts and g, r light curves, with ground truth);
    2. show the **dashboard** inline;
    3. **lasso** a region of the map from code, and look at the **cutouts** and **light curves** it caught;
    4. **find similar** objects to one galaxy;
    5. **label** a few objects and **export** them as a VOTable for TOPCAT or Aladin.

    Run it from the `notebooks/` folder. The first run builds the workspace `explorer-demo/` (every cutout and
    light curve is embedded: under a minute on two idle CPU cores); later runs reuse it.

    The same from a terminal:

    ```bash
    explorer demo --workspace explorer-demo --simulated {N_SIMULATED} --no-serve
    explorer info explorer-demo
    explorer serve explorer-demo          # the dashboard at http://127.0.0.1:5006/
    ```

    One difference: `explorer demo` draws the map with **UMAP**, which keeps neighbours together and separates
    the kinds of object far better than a linear projection, but takes a minute or two to fit. To keep this
    notebook quick we draw a **PCA** map (a fraction of a second); everything below works the same on either.
    For the real thing, `explorer map explorer-demo --method umap`, or `map_workspace(ws, method="umap")`.
    """),
    code(f"""
    import html
    from pathlib import Path

    import holoviews as hv
    import numpy as np
    from IPython.display import HTML, display

    from explorer.analysis.workspace_ops import map_workspace, score_workspace
    from explorer.data.defaults import add_first, add_simulated
    from explorer.info import describe, format_info
    from explorer.models.embed import embed_workspace
    from explorer.workspace import Workspace

    hv.extension("bokeh")

    WORKSPACE = Path("explorer-demo")  # delete this folder to start again from scratch
    ws = Workspace.open_or_create(WORKSPACE)
    if ws.current("scores") is None:  # the first run: what `explorer demo` does, with a PCA map
        add_first(ws)  # the 2,158 FIRST radio galaxies shipped in the firstgalaxydata wheel
        add_simulated(ws, {N_SIMULATED}, seed=0)  # cutouts and light curves with ground truth
        embed_workspace(ws)  # the shipped encoders: one vector per object and modality, and a joint one
        map_workspace(ws, method="pca")  # 2-D map coordinates (method="umap" for the real thing)
        score_workspace(ws)  # unsupervised anomaly scores, higher = more unusual
    print(format_info(describe(ws)))
    """),
    md("""
    A workspace is one folder: a catalogue, the cutouts and light curves, and *versions* of everything computed
    from them (embeddings, maps, anomaly scores), tied together by `manifest.json`
    ([docs/workspace.md](../docs/workspace.md)). Every object is keyed by its `id`.
    """),
    code("""
    print(sorted(p.name for p in ws.path.iterdir() if not p.name.startswith(".")))
    print("current versions:", ws.manifest["current"])

    cat = ws.catalog.table.set_index("id")
    cat[["ra", "dec", "class", "source", "image_set", "has_lightcurve", "is_oddity"]].sample(6, random_state=1)
    """),
    md("""
    ## The dashboard, inline

    `Explorer` is the same object `explorer serve` puts in a browser tab: the map (colour it by class, label or
    anomaly score), the inspector with cutouts and light curves, find-similar, labelling buttons (keys `a`, `n`,
    `x`), export, the discovery curve and fine-tuning. Drag on the map to lasso.
    """),
    code("""
    from explorer.app import Explorer

    app = Explorer(ws, user="quickstart")
    app
    """),
    md("""
    ## Lasso from code

    In the browser a lasso drag sends its polygon, in map coordinates, through a HoloViews `Lasso` stream, and the
    server resolves it to ids. Here we send the same event from Python (`app.map.lasso_stream`; `box_stream` and
    `tap_stream` do the same for a box and a click), around the RR Lyrae stars on the map, and check that the
    library's own `select` (what `explorer select` runs) returns the very same objects.
    """),
    code("""
    from explorer.analysis import workspace_ops

    coords, map_meta = ws.map()  # id, x, y of the current map
    coords["class"] = cat.loc[coords["id"], "class"].to_numpy()
    xy = coords[["x", "y"]].to_numpy()
    rr = coords.loc[coords["class"] == "rrlyrae", ["x", "y"]].to_numpy()
    centre = rr[np.argmin(np.linalg.norm(rr - np.median(rr, axis=0), axis=1))]  # the RR Lyrae nearest their median
    radius = 0.06 * np.ptp(xy, axis=0).max()
    angle = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    polygon = centre + radius * np.c_[np.cos(angle), np.sin(angle)]

    app.map.lasso_stream.event(geometry=polygon)  # what a mouse-up after a lasso drag sends
    selected = app.session.selected_ids

    same = workspace_ops.select(ws, polygon)
    assert set(same) == set(selected), "the dashboard and the library disagree about the lasso"
    print(f"{len(selected)} objects inside the lasso on {map_meta['version']} ({map_meta['method']})")
    print('explorer select explorer-demo --polygon "' + " ".join(f"{x:.3f},{y:.3f}" for x, y in polygon) + '"')
    cat.loc[selected, "class"].value_counts().head(8)
    """),
    code("""
    inside = coords["id"].isin(selected)
    (
        hv.Points(coords, ["x", "y"]).opts(color="lightgrey", size=2)
        * hv.Points(coords[inside], ["x", "y"]).opts(color="crimson", size=3)
        * hv.Path([np.vstack([polygon, polygon[:1]])]).opts(color="black", line_dash="dashed")
    ).opts(width=520, height=460, xaxis=None, yaxis=None, title=f"the lasso on {map_meta['version']}")
    """),
    md("""
    ## Cutouts of the selection

    The inspector shows a selection most-anomalous first. Thumbnails use `astropy.visualization`: an asinh stretch
    between zscale limits; three-band cutouts become an RGB composite (i, r, g as red, green, blue).
    """),
    code("""
    from explorer.app.plots.cutouts import thumbnail_uri


    def gallery(ids, caption=lambda oid: cat.at[oid, "class"], size=96, stretch="asinh", interval="zscale"):
        \"\"\"An HTML grid of cutouts with a caption under each (objects without a cutout are skipped).\"\"\"
        cells = []
        for oid in ids:
            image_set = cat.at[oid, "image_set"]
            if not isinstance(image_set, str):
                continue
            bands = ws.catalog.images[image_set].bands
            uri = thumbnail_uri(ws.catalog.cutout(oid), size=size, stretch=stretch, interval=interval, bands=bands)
            cells.append(
                f"<figure style='margin:3px;text-align:center'><img src='{uri}' width='{size}'>"
                f"<figcaption style='font-size:10px'>{html.escape(str(oid))}<br>"
                f"{html.escape(str(caption(oid)))}</figcaption></figure>"
            )
        return HTML("<div style='display:flex;flex-wrap:wrap'>" + "".join(cells) + "</div>")


    gallery(app.session.gallery_ids[:12])
    """),
    md("""
    The stretch matters: radio galaxies have bright cores and faint lobes. One FIRST galaxy, four ways
    (`explorer.app.plots.cutouts.render` wraps the astropy stretches and intervals the inspector offers):
    """),
    code("""
    frii = cat.index[cat["class"] == "FRII"][0]
    views = [("linear", "minmax"), ("sqrt", "99.5%"), ("asinh", "zscale"), ("log", "99%")]
    display(*[gallery([frii], caption=lambda _, s=s, i=i: f"{s} / {i}", size=140, stretch=s, interval=i)
              for s, i in views])
    """),
    md("""
    ## Light curves of the selection

    Raw, and phase-folded at the Lomb–Scargle period (`astropy.timeseries`), as the inspector draws them; the
    simulation's true period is in the catalogue (`p_period`) to check against.
    """),
    code("""
    from explorer.app.plots.lightcurve import lightcurve_plot, lomb_scargle_period

    plots = []
    for oid in [i for i in app.session.gallery_ids if cat.at[i, "has_lightcurve"]][:3]:
        lc = ws.catalog.lightcurve(oid)
        best = lomb_scargle_period(lc)
        plots.append(lightcurve_plot(lc, title=f"{oid}: {cat.at[oid, 'class']}", width=380, height=220))
        if best is None:
            plots.append(hv.Text(0.5, 0.5, "too few points to fold").opts(width=380, height=220, xaxis=None, yaxis=None))
        else:
            title = f"folded at P = {best.period:.4f} d (true {cat.at[oid, 'p_period']:.4f} d)"
            plots.append(lightcurve_plot(lc, period=best.period, title=title, width=380, height=220))
    hv.Layout(plots).cols(2)
    """),
    md("""
    ## Find similar

    Similarity is the cosine of the angle between embeddings. Take one bent-tailed radio galaxy and ask for the twelve
    nearest objects; then steer the search: more like these two, not like a classical double (FRII).
    On the command line: `explorer similar explorer-demo ID -k 12` and `... ID1 ID2 --not ID3`.
    """),
    code("""
    query = cat.index[cat["class"] == "Bent"][0]
    result = workspace_ops.similar(ws, [query], k=12)  # id, similarity, rank
    similarity = result.set_index("id")["similarity"]
    display(gallery([query], caption=lambda oid: f"query: {cat.at[oid, 'class']}", size=130))
    display(gallery(result["id"], caption=lambda oid: f"{cat.at[oid, 'class']}  {similarity[oid]:.2f}"))

    first = cat[cat["source"] == "first"]
    share = (cat.loc[result["id"], "class"] == "Bent").mean()
    print(f"{share:.0%} of the 12 nearest objects are bent too; {(first['class'] == 'Bent').mean():.0%} of FIRST is")
    """),
    code("""
    frii = cat.index[cat["class"] == "FRII"][0]
    steered = workspace_ops.similar(ws, [query, result["id"].iloc[0]], negative=[frii], k=12)
    app.session.set_similar(steered, query)  # the dashboard's gallery and map now show these
    cat.loc[steered["id"], "class"].value_counts()
    """),
    md("""
    ## Label a few

    The label store is a SQLite file in the workspace that only ever appends: who labelled what, when, looking at
    which map and model version ([docs/labels.md](../docs/labels.md)). The dashboard's buttons and keys call
    `app.labeller.label(...)`, which saves at once and re-learns the anomaly ranking.

    Start from the top of the anomaly ranking, the objects nobody has labelled yet:
    """),
    code("""
    candidates = app.session.candidates(12)
    gallery(candidates, caption=lambda oid: f"{cat.at[oid, 'class']} ({cat.at[oid, 'source']})")
    """),
    md("""
    You would look at each and press `a` (anomaly), `n` (normal) or `x` (artefact). Here the simulation's ground
    truth stands in for your eye: `is_oddity` marks the injected oddities (mergers, lenses, rings, artefacts,
    microlensing events, ...). FIRST galaxies carry no such flag; we call them normal.
    """),
    code("""
    odd = cat.loc[candidates, "is_oddity"].eq(True)
    if odd.any():
        app.labeller.label("anomaly", ids=list(odd.index[odd]))
    app.labeller.label("normal", ids=list(odd.index[~odd]))

    with ws.labels() as store:
        print("labels now:", store.counts())
        current = store.current()
    current[["id", "label", "user", "time", "map_version", "model_version"]]
    """),
    md("""
    The ranking has re-learnt from those labels (active anomaly discovery): the next candidates are different.
    From a terminal: `explorer label explorer-demo ID... --as anomaly --user me`, `explorer labels explorer-demo`.
    """),
    code("""
    gallery(app.session.candidates(8), caption=lambda oid: f"{cat.at[oid, 'class']} ({cat.at[oid, 'source']})")
    """),
    md("""
    ## Export as a VOTable

    Every labelled object, with its label, who gave it, anomaly score, map position and catalogue columns, and the
    versions it came from in the file's INFO elements ([docs/export.md](../docs/export.md)). Open it in TOPCAT or
    Aladin, or send it there over SAMP (`explorer samp send`).

    ```bash
    explorer export explorer-demo --label anomaly --label normal --format votable -o labelled.vot --overwrite
    ```
    """),
    code("""
    from astropy.io.votable import parse

    from explorer.export import export_subset

    out = export_subset(ws, "labelled.vot", "votable", labels=["anomaly", "normal"], overwrite=True)
    votable = parse(out)
    for info in votable.resources[0].infos:  # where the rows came from
        print(f"{info.name:>20}: {info.value}")
    exported = votable.get_first_table().to_table()
    exported["id", "ra", "dec", "label", "label_user", "anomaly_score", "class"][:8]
    """),
    md("""
    Next: [02_bring_your_own_data](02_bring_your_own_data.ipynb) builds a workspace from your own FITS cutouts,
    catalogue and light curves; [03_anomaly_hunt_and_finetune](03_anomaly_hunt_and_finetune.ipynb) runs the
    active-learning loop and fine-tunes on the labels.
    """),
]


# ----------------------------------------------------------------------------------------------------------------
# 02 bring your own data
# ----------------------------------------------------------------------------------------------------------------
BRING_YOUR_OWN = [
    md("""
    # Bring your own data

    From the files you have to a map you can explore:

    1. **files**: a folder of FITS cutouts (one per object), a CSV catalogue and a Parquet table of light curves.
       So that this notebook runs anywhere, we first *write* such files for a small mock survey with astropy
       (240 objects: stars, elliptical and disk galaxies, six ring galaxies to find; light curves for the stars).
       Point the paths at your own files instead.
    2. **ingest** them into a new workspace;
    3. **pretrain** an image encoder on your cutouts (self-supervised: no labels), or plug in one you have;
    4. **embed**, **map**, **score**, and **explore**.

    The same from a terminal:

    ```bash
    explorer ingest my-survey-ws --catalog my_survey/catalog.csv --images my_survey/cutouts \\
        --lightcurves my_survey/lightcurves.parquet --image-set mysurvey
    explorer pretrain my-survey-ws --modality image --epochs 10
    explorer embed my-survey-ws
    explorer map my-survey-ws             # UMAP; --method pca for the quick map drawn below
    explorer score my-survey-ws
    explorer serve my-survey-ws
    ```
    """),
    md("""
    ## 1. Files, as a survey would deliver them

    Cutouts: 48×48 pixels of 0.262″, in nanomaggies, with a TAN WCS centred on the object; 1.1″ seeing, sky noise.
    Galaxies are Sérsic profiles (`astropy.modeling`), convolved with the PSF. The file name is the object id.
    """),
    code("""
    import html
    import shutil
    from pathlib import Path

    import astropy.units as u
    import holoviews as hv
    import numpy as np
    import pandas as pd
    from astropy.convolution import Gaussian2DKernel, convolve_fft
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.modeling.models import Ring2D, Sersic2D
    from astropy.wcs import WCS
    from IPython.display import HTML, display

    hv.extension("bokeh")
    rng = np.random.default_rng(7)
    DATA = Path("my_survey")
    shutil.rmtree(DATA, ignore_errors=True)  # this notebook writes its mock survey afresh each run
    (DATA / "cutouts").mkdir(parents=True)

    N, SIZE, PIXEL, ZP = 240, 48, 0.262, 22.5  # objects, pixels, arcsec per pixel, AB mag of one nanomaggy
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    psf = Gaussian2DKernel(1.1 / 2.355 / PIXEL)  # 1.1 arcsec FWHM seeing

    kind = rng.choice(["star", "elliptical", "disk"], size=N, p=[0.35, 0.3, 0.35]).astype(object)
    kind[rng.choice(np.flatnonzero(kind != "star"), 6, replace=False)] = "ring"  # the oddities to find
    ra, dec = rng.uniform(150.0, 151.0, N), rng.uniform(2.0, 3.0, N)
    mag_r = np.where(kind == "star", rng.uniform(16, 20, N), rng.uniform(16.5, 19.5, N)).round(3)
    names = SkyCoord(ra * u.deg, dec * u.deg).to_string("hmsdms", sep="", precision=1)
    ids = ["MYJ" + n.replace(" ", "") for n in names]


    def profile(kind):
        \"\"\"Unit-flux model of one object, seen through the seeing.\"\"\"
        if kind == "star":
            img = ((x == 0) & (y == 0)).astype(float)
        elif kind == "elliptical":
            img = Sersic2D(1, rng.uniform(4, 7), 4, 0, 0, rng.uniform(0, 0.3), rng.uniform(0, np.pi))(x, y)
        elif kind == "disk":
            img = Sersic2D(1, rng.uniform(5, 10), 1, 0, 0, rng.uniform(0.2, 0.7), rng.uniform(0, np.pi))(x, y)
        else:
            img = Ring2D(1, 0, 0, r_in=rng.uniform(7, 10), width=2)(x, y) + 0.5 * Sersic2D(1, 2, 4, 0, 0)(x, y)
        img = convolve_fft(img, psf)
        return img / img.sum()


    for oid, k, m, r, d in zip(ids, kind, mag_r, ra, dec, strict=True):
        image = 10 ** ((ZP - m) / 2.5) * profile(k) + rng.normal(0, 0.05, (SIZE, SIZE))
        wcs = WCS(naxis=2)
        wcs.wcs.ctype, wcs.wcs.crval = ["RA---TAN", "DEC--TAN"], [r, d]
        wcs.wcs.crpix, wcs.wcs.cdelt = [SIZE // 2 + 1] * 2, [-PIXEL / 3600, PIXEL / 3600]
        header = wcs.to_header()
        header["BUNIT"], header["FILTER"] = "nanomaggy", "r"
        fits.PrimaryHDU(image.astype(np.float32), header=header).writeto(DATA / "cutouts" / f"{oid}.fits")

    catalog = pd.DataFrame({"object_id": ids, "ra": ra, "dec": dec, "mag_r": mag_r, "kind": kind})
    catalog.to_csv(DATA / "catalog.csv", index=False)
    print(f"{len(list((DATA / 'cutouts').glob('*.fits')))} FITS cutouts and {DATA / 'catalog.csv'}")
    catalog.head()
    """),
    md("""
    Light curves for the stars, in *long form* (one row per measurement), with the column names many surveys use
    (`mjd`, `magerr`, `filter`: the reader understands these aliases). Two seasons of g and r, ZTF-like irregular
    cadence; some stars pulsate, some eclipse, one or two flare.
    """),
    code("""
    stars = catalog[catalog["kind"] == "star"]
    variability = rng.choice(["constant", "pulsator", "eclipsing", "flare"], size=len(stars), p=[0.45, 0.3, 0.2, 0.05])
    rows = []
    for oid, m, var in zip(stars["object_id"], stars["mag_r"], variability, strict=True):
        t = np.sort(np.r_[rng.uniform(59000, 59120, 35), rng.uniform(59365, 59485, 35)])
        period = rng.uniform(0.3, 0.8) if var == "pulsator" else rng.uniform(0.8, 3.0)
        phase = (t / period) % 1
        t_flare = rng.uniform(59000, 59485)
        for band, colour in (("g", 0.4), ("r", 0.0)):
            if var == "pulsator":  # sawtooth: fast rise, slow decline
                delta = -0.45 * (1 - phase) + 0.1 * (band == "g") * np.sin(2 * np.pi * phase)
            elif var == "eclipsing":
                delta = 0.6 * np.exp(-0.5 * ((phase - 0.5) / 0.04) ** 2)
            elif var == "flare":
                delta = np.where(t > t_flare, -2.0 * np.exp(-(t - t_flare) / 3.0), 0.0)
            else:
                delta = np.zeros_like(t)
            err = 0.01 + 0.02 * 10 ** (0.4 * (m + colour - 19))
            mag = m + colour + delta + rng.normal(0, err)
            rows.append(pd.DataFrame({"object_id": oid, "mjd": t, "mag": mag, "magerr": err, "filter": band}))
    lightcurves = pd.concat(rows, ignore_index=True)
    lightcurves.to_parquet(DATA / "lightcurves.parquet", index=False)
    catalog.loc[stars.index, "variability"] = variability  # kept here to check against, not ingested
    print(f"{lightcurves['object_id'].nunique()} light curves, {len(lightcurves)} points")
    lightcurves.head()
    """),
    code("""
    with fits.open(DATA / "cutouts" / f"{ids[0]}.fits") as hdul:
        print(repr(hdul[0].header)[:800])
    """),
    md("""
    ## 2. Ingest

    `ingest_files` reads the catalogue (CSV, Parquet, FITS, VOTable, ECSV; the id column is found among `id`,
    `object_id`, `objid`, ...), the cutouts (a folder or glob of FITS, a FITS cube, PNG/JPEG, HDF5) and the light
    curves (one long-form table, or a folder with one file per object), checks that every cutout and light curve
    has a catalogue row, and adds everything in one step: if anything is wrong nothing is added, and the error
    names the file, column or id. ([docs/workspace.md](../docs/workspace.md))
    """),
    code("""
    from explorer.data.ingest import ingest_files
    from explorer.workspace import Workspace

    WORKSPACE = Path("my-survey-ws")
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    ws = Workspace.create(WORKSPACE)
    added = ingest_files(ws, DATA / "catalog.csv", images=DATA / "cutouts",
                         lightcurves=DATA / "lightcurves.parquet", image_set="mysurvey")
    print(added)
    cat = ws.catalog.table.set_index("id")
    store = ws.catalog.images["mysurvey"]
    print("cutouts:", store.shape, "per object, bands", store.bands)
    cat.head()
    """),
    md("""
    ## 3. An encoder

    The embedding pipeline picks an encoder per image set: a checkpoint in the workspace trained on that set,
    else a shipped one in `assets/` with the right number of bands ([docs/encoders.md](../docs/encoders.md)).
    Nothing shipped was trained on single-band 48-pixel optical cutouts, so we **pretrain** one here: a small CNN
    learns, without labels, that two randomly rotated, flipped, shifted, blurred and noised views of the same
    cutout belong together (SimCLR). Two epochs of a small network keep this notebook quick; for your survey use
    the defaults (`explorer pretrain WS --modality image --epochs 10`: about 12 minutes for 10,000 cutouts on two
    CPU cores).

    Light curves use the shipped light-curve transformer (bands u, g, r, i, z): our g and r are in its vocabulary.
    """),
    code("""
    from explorer.models.image_encoder import ImageModelConfig
    from explorer.models.registry import record_training_data
    from explorer.models.train_image import ImagePretrainConfig, pretrain_images

    config = ImagePretrainConfig(
        model=ImageModelConfig(bands=1, input_size=48, widths=(16, 32, 64), embedding_dim=32),
        batch_size=64, projector_hidden=128, projector_dim=32,
    )
    checkpoint = pretrain_images(store.array, config, ws.checkpoint_dir("image-mysurvey"), epochs=2, seed=0)
    record_training_data(checkpoint, image_set="mysurvey", workspace=str(ws.path), objects=len(store))
    sorted(p.name for p in checkpoint.iterdir())
    """),
    md("""
    ## 4. Embed

    Every object gets one vector per modality it has, and one *joint* vector (a block per encoder, zeros where a
    modality is missing). `scheduler="local:2"` or a Dask address would spread the work over processes or
    machines (notebook 04).
    """),
    code("""
    from explorer.models.embed import embed_workspace

    pretrained = embed_workspace(ws)
    meta = ws.versions("embeddings")[pretrained]
    print(pretrained, {space: f"{v['n']}×{v['dim']}" for space, v in meta["spaces"].items()})
    {job: m["name"] for job, m in meta["models"].items()}
    """),
    md("""
    ### Or plug in an encoder you have

    * **a checkpoint**: name it (a folder made by `explorer pretrain`, one in `WS/checkpoints/`, or a shipped one
      in `assets/`): `embed_workspace(ws, image_model=...)`, or `explorer embed WS --model ...`. Below, the shipped
      encoder of the FIRST radio survey, a single-band encoder too.
    * **any `torch.nn.Module`** (Zoobot, AstroPT, a ResNet of your own): wrap it in `TorchImageEncoder` with the
      preprocessing your weights expect, embed, and import the vectors as an embedding version
      (`explorer import-vectors WS vectors.npz` does the same from a file). Below, an untrained random
      convolution stands in for such a model.

    Which is best for *your* data? A quick check: how often an object's nearest neighbours share its class, on a
    column you trust (kNN accuracy, here on `kind`). We keep the best for the rest of the notebook. Two short
    epochs on 240 cutouts are little for contrastive pretraining, so do not be surprised if an encoder trained
    on another survey wins here; on your own thousands of cutouts, pretrain for longer.
    """),
    code("""
    import torch
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from torch import nn

    from explorer.models.embed import import_vectors
    from explorer.models.image_encoder import TorchImageEncoder, embed_images, normalise_cutouts

    shipped = embed_workspace(ws, image_model="image_encoder_first")

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 16, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
    encoder = TorchImageEncoder(module, preprocess=lambda batch: normalise_cutouts(batch, 48)[0],
                                name="random-conv", embedding_dim=16 * 4 * 4)
    vectors = embed_images(encoder, store.array, ids=store.ids, progress=False)
    np.savez("random_conv_vectors.npz", ids=np.asarray(store.ids, dtype=str), vectors=vectors)
    plugged = import_vectors(ws, "random_conv_vectors.npz", space="image")


    def knn_accuracy(version, space="image"):
        \"\"\"5-fold accuracy of a 5-nearest-neighbour vote on `kind`, in one embedding version.\"\"\"
        emb = ws.embeddings(version, space=space)
        truth = cat.loc[emb.ids, "kind"].to_numpy()
        return cross_val_score(KNeighborsClassifier(5), np.asarray(emb.vectors), truth, cv=5).mean()


    accuracy = {name: knn_accuracy(version) for name, version in
                {"pretrained here": pretrained, "shipped FIRST": shipped, "random conv": plugged}.items()}
    for name, a in accuracy.items():
        print(f"kNN accuracy on kind, {name:>15}: {a:.2f}")
    winner = max(accuracy, key=accuracy.get)
    best = {"pretrained here": pretrained, "shipped FIRST": shipped, "random conv": plugged}[winner]
    ws.set_current("embeddings", best)
    print(f"carrying on with {best} ({winner})")
    """),
    md("""
    ## 5. Map and score

    A map projects the joint vectors to 2-D; an anomaly score says how unusual each object is (higher = more
    anomalous): by default the best of several detectors, each as a tail significance in decades of rarity --
    the mean distance to the nearest neighbours in the joint space and in the light-curve space, the light
    curves' classic variability statistics (amplitude, reduced chi-square, skewness, kurtosis, von Neumann
    ratio), and five statistics of the cutouts' pixels for what embeddings trained to ignore noise blur (hot
    pixels, satellite trails, rings, a companion of the galaxy's colour, a blue lensed arc); each detector's own score is saved
    beside it. Both are saved as new versions in the workspace,
    recording which embeddings they came from ([docs/maps.md](../docs/maps.md)).

    Here the map is a PCA projection: a fraction of a second. For exploring, use UMAP (`method="umap"`, the
    default of `explorer map`): seeded, so the same map every run, and far better at keeping similar objects
    together and apart from the rest, but its first fit in a new Python process spends a while compiling (numba),
    and a few thousand objects take about a minute on two CPU cores.
    """),
    code("""
    from explorer.analysis import workspace_ops

    print(workspace_ops.map_workspace(ws, method="pca"), workspace_ops.score_workspace(ws))
    coords, _ = ws.map()
    scores, _ = ws.scores()
    coords = coords.merge(scores, on="id")
    coords["kind"] = cat.loc[coords["id"], "kind"].to_numpy()
    hv.Points(coords, ["x", "y"], ["kind", "id", "score"]).opts(
        color="kind", cmap="Category10", size=6, width=560, height=460, tools=["hover"],
        xaxis=None, yaxis=None, legend_position="right", title="your survey on the map, coloured by kind",
    )
    """),
    md("""
    ## 6. Explore

    Find more of something you found: the nearest neighbours of one ring galaxy. Thumbnails use an asinh stretch
    between zscale limits (`astropy.visualization`).
    """),
    code("""
    from explorer.app.plots.cutouts import thumbnail_uri


    def gallery(ids, caption=lambda oid: cat.at[oid, "kind"], size=88):
        \"\"\"An HTML grid of cutouts with a caption under each.\"\"\"
        cells = [
            f"<figure style='margin:3px;text-align:center'><img src='{thumbnail_uri(ws.catalog.cutout(oid), size=size)}' "
            f"width='{size}'><figcaption style='font-size:10px'>{html.escape(str(caption(oid)))}</figcaption></figure>"
            for oid in ids
        ]
        return HTML("<div style='display:flex;flex-wrap:wrap'>" + "".join(cells) + "</div>")


    ring = cat.index[cat["kind"] == "ring"][0]
    similar = workspace_ops.similar(ws, [ring], k=10)
    display(gallery([ring], caption=lambda oid: "query: ring", size=120))
    gallery(similar["id"], caption=lambda oid: f"{cat.at[oid, 'kind']}")
    """),
    md("""
    What would you look at first? The joint vectors hold a light-curve block for the stars only, so the
    unsupervised score of the joint space flags the unusual *light curves*. To hunt for odd *shapes*, score the
    cutout space alone, without the other detectors (a new score version;
    `explorer score WS --space image --embeddings-only`). Where do the six rings rank?
    """),
    code("""
    by_space = {}
    for space in ("joint", "image"):
        version = workspace_ops.score_workspace(ws, space=space, detectors=False)
        table, _ = ws.scores(version)
        by_space[space] = table.sort_values("score", ascending=False)["id"].to_numpy()
        ranks = np.flatnonzero(np.isin(by_space[space], cat.index[cat["kind"] == "ring"])) + 1
        print(f"{space:>5} space: the rings rank {ranks.tolist()} of {len(table)}")
    gallery(by_space["image"][:12], caption=lambda oid: f"{cat.at[oid, 'kind']}")
    """),
    code("""
    from explorer.app.plots.lightcurve import lightcurve_plot, lomb_scargle_period

    plots = []
    for oid in [i for i in by_space["joint"] if cat.at[i, "has_lightcurve"]][:2]:
        lc = ws.catalog.lightcurve(oid)
        best_period = lomb_scargle_period(lc, max_period=5.0)
        plots.append(lightcurve_plot(lc, title=f"{oid} ({catalog.set_index('object_id').at[oid, 'variability']})",
                                     width=380, height=220))
        if best_period is not None:
            plots.append(lightcurve_plot(lc, period=best_period.period, width=380, height=220,
                                         title=f"folded at {best_period.period:.3f} d"))
    hv.Layout(plots).cols(2)
    """),
    md("""
    And the dashboard, on your own workspace (`explorer serve my-survey-ws` in a terminal):
    """),
    code("""
    from explorer.app import Explorer

    Explorer(ws, user="me")
    """),
]


# ----------------------------------------------------------------------------------------------------------------
# 03 anomaly hunt and fine-tune
# ----------------------------------------------------------------------------------------------------------------
ANOMALY_HUNT = [
    md("""
    # Hunting anomalies, then fine-tuning on the labels

    Rare objects are what a survey hides best. The explorer ranks objects by how unusual their embeddings are
    and **re-learns that ranking from every label** you give (active anomaly discovery: by default the distance to
    the nearest neighbours, raised or lowered around each labelled object; or an isolation forest whose leaves are
    re-weighted after each label, after Das et al. 2017). This notebook measures how much that helps,
    on the simulated survey, where the truth is known: 0.5% of its objects are injected oddities (mergers, rings,
    gravitational lenses, satellite trails and hot pixels in the images; microlensing events, flares and dippers
    in the light curves), flagged in the catalogue column `is_oddity`.

    1. build a simulated survey of 3,000 objects: embed, map, score;
    2. play the astronomer with an **oracle** (the ground truth answers "anomaly" or "normal" for each object
       shown) and plot the **discovery curve**, anomalies found against objects looked at, for the active loop,
       the unsupervised ranking and a random order;
    3. **fine-tune** the image encoder on those labels, and compare the maps before and after.

    The same from a terminal (labels would come from you, in the dashboard or with `explorer label`):

    ```bash
    explorer simulate anomaly-hunt --n 3000 --seed 0
    explorer embed anomaly-hunt && explorer map anomaly-hunt --method pca && explorer score anomaly-hunt
    explorer serve anomaly-hunt          # label with a / n / x; the discovery curve updates live
    explorer finetune anomaly-hunt --head-only
    ```

    The maps here are PCA projections, which take a fraction of a second; the anomaly ranking and the fine-tuning
    work on the embeddings, not on the map, so nothing else depends on that choice. UMAP (`explorer map
    anomaly-hunt`, the default method) draws neighbourhoods far more clearly but takes a minute or two per map
    on two CPU cores.
    """),
    code("""
    import html
    import shutil
    from pathlib import Path

    import holoviews as hv
    import numpy as np
    from IPython.display import HTML, display

    from explorer.analysis import workspace_ops
    from explorer.data.defaults import add_simulated
    from explorer.models.embed import embed_workspace
    from explorer.workspace import Workspace

    hv.extension("bokeh")
    WORKSPACE = Path("anomaly-hunt")
    shutil.rmtree(WORKSPACE, ignore_errors=True)  # this notebook labels and fine-tunes: start afresh each run
    ws = Workspace.create(WORKSPACE)
    add_simulated(ws, 3000, seed=0)
    embed_workspace(ws)  # the shipped image and light-curve encoders
    workspace_ops.map_workspace(ws, method="pca")  # a quick linear map (method="umap": the dashboard's default)
    workspace_ops.score_workspace(ws)  # unsupervised scores: kNN per space + variability + cutout artefacts
    cat = ws.catalog.table.set_index("id")
    print(ws.manifest["current"])
    cat.loc[cat["is_oddity"], "class"].value_counts()[lambda n: n > 0]
    """),
    md("""
    What we are hunting: every injected oddity of this survey. Image oddities show in the cutout (asinh stretch,
    zscale limits, i/r/g as RGB); light-curve oddities sit on a point source, so their cutout looks like any star.
    """),
    code("""
    from explorer.app.plots.cutouts import thumbnail_uri


    def gallery(ids, caption=lambda oid: cat.at[oid, "class"], size=80):
        \"\"\"An HTML grid of cutouts with a caption under each (objects without a cutout are skipped).\"\"\"
        bands = ws.catalog.images["simulated"].bands
        cells = [
            f"<figure style='margin:3px;text-align:center'>"
            f"<img src='{thumbnail_uri(ws.catalog.cutout(oid), size=size, bands=bands)}' width='{size}'>"
            f"<figcaption style='font-size:10px'>{html.escape(str(caption(oid)))}</figcaption></figure>"
            for oid in ids if isinstance(cat.at[oid, "image_set"], str)
        ]
        return HTML("<div style='display:flex;flex-wrap:wrap'>" + "".join(cells) + "</div>")


    oddities = cat.index[cat["is_oddity"]]
    gallery(oddities)
    """),
    md("""
    ## The active-learning loop, with an oracle

    `AnomalyScorer` is what the dashboard's ranking uses. Fitted on the joint embeddings without any label, its
    order is the *unsupervised ranking*. Then, 150 times: show the top unlabelled object, ask the oracle,
    `update` the scorer with the answer, re-rank. Three rankers: an isolation forest whose leaf weights are
    re-solved after each label (every object sharing leaves with the labelled one moves); the mean distance to
    the nearest neighbours with a kernel bump around each labelled object; and, what the dashboard's ranking
    does, feedback starting from the scores `explorer score` saved (every detector combined): each label also
    says how far to trust the detector that flagged the object (`detectors`: call a few of one detector's finds
    normal and the rest of what it flags sinks), and an anomaly spreads to objects alike in the embedding *and*
    flagged alike by the detectors (`side_features`).
    """),
    code("""
    from explorer.analysis.anomaly import AnomalyScorer, discovery_curve
    from explorer.analysis.detectors import significances

    emb = ws.embeddings()  # the current joint embeddings, one row per object
    ids, X = emb.ids, np.asarray(emb.vectors)
    is_oddity = cat.loc[ids, "is_oddity"].to_numpy(dtype=bool)
    oracle = dict(zip(ids, np.where(is_oddity, "anomaly", "normal"), strict=True))
    BUDGET = 150

    saved_table, saved_meta = ws.scores()
    saved_table = saved_table.set_index("id").reindex(ids)
    saved = saved_table["score"].to_numpy()
    detectors = saved_meta["detectors"]  # e.g. knn_joint, knn_lightcurve, variability, hot_pixel, trail, ring, ...
    flagged_alike = significances({d: saved_table[d].to_numpy() for d in detectors}) if detectors else None
    loops = {}
    for method in ("iforest", "knn", "saved"):
        if method == "saved":  # kNN feedback on top of the saved, combined scores, as the dashboard does
            scorer = AnomalyScorer(random_state=0).fit(X, ids, prior_scores=saved, side_features=flagged_alike,
                                                       detectors=flagged_alike)
        else:
            scorer = AnomalyScorer(method=method, random_state=0).fit(X, ids)
        unsupervised = scorer.rank()  # most anomalous first, before any label
        viewed = []
        for _ in range(BUDGET):
            shown = scorer.rank(top=1, exclude_labelled=True)[0]
            scorer.update({shown: oracle[shown]})  # one label, and the whole ranking re-learns
            viewed.append(shown)
        loops[method] = {"unsupervised": unsupervised[:BUDGET], "active": np.array(viewed)}
        n_active = is_oddity[np.isin(ids, viewed)].sum()
        n_unsupervised = is_oddity[np.isin(ids, unsupervised[:BUDGET])].sum()
        print(f"{method:>8}: {n_active} of {is_oddity.sum()} oddities found in {BUDGET} looks "
              f"(unsupervised top {BUDGET}: {n_unsupervised})")
    """),
    code("""
    truth = set(ids[is_oddity])
    random_order = np.random.default_rng(0).permutation(ids)[:BUDGET]
    styles = {("iforest", "active"): ("#e6194b", "solid"), ("iforest", "unsupervised"): ("#e6194b", "dashed"),
              ("knn", "active"): ("#4363d8", "solid"), ("knn", "unsupervised"): ("#4363d8", "dashed"),
              ("saved", "active"): ("#3cb44b", "solid"), ("saved", "unsupervised"): ("#3cb44b", "dashed")}
    lines = []
    for (method, kind), (colour, dash) in styles.items():
        curve = discovery_curve(loops[method][kind], truth, n_total=len(ids))
        lines.append(hv.Curve(curve, "viewed", "found", label=f"{method}, {kind}").opts(
            color=colour, line_dash=dash, line_width=2, interpolation="steps-post"))
    chance = discovery_curve(random_order, truth, n_total=len(ids))
    lines += [
        hv.Curve(chance, "viewed", "found", label="random order").opts(color="#999999", interpolation="steps-post"),
        hv.Curve(chance, "viewed", "random", label="random (expected)").opts(color="#999999", line_dash="dotted"),
    ]
    hv.Overlay(lines).opts(width=660, height=400, legend_position="top_left", xlabel="objects looked at",
                           ylabel="oddities found", title="discovery curve", show_grid=True)
    """),
    md("""
    We keep the labels of the loop that found more.
    """),
    code("""
    method = max(loops, key=lambda m: is_oddity[np.isin(ids, loops[m]["active"])].sum())
    viewed = list(loops[method]["active"])
    found = [oid for oid in viewed if oracle[oid] == "anomaly"]
    print(f"the {method} loop: {len(found)} found")
    cat.loc[found, "class"].value_counts()[lambda n: n > 0]
    """),
    md("""
    What the loop found, and what it has not found yet:
    """),
    code("""
    display(gallery(found, caption=lambda oid: f"found: {cat.at[oid, 'class']}"))
    gallery([oid for oid in oddities if oid not in set(found)], caption=lambda oid: f"missed: {cat.at[oid, 'class']}")
    """),
    md("""
    ## Save the labels

    In the dashboard every label goes to the workspace's label store the moment it is made. Here we write the
    oracle's 150 answers in two calls, as user `oracle`, with the model and map versions they were made on.
    """),
    code("""
    normal = [oid for oid in viewed if oracle[oid] == "normal"]
    with ws.labels() as store:
        versions = {"model_version": ws.current("embeddings"), "map_version": ws.current("maps")}
        store.add(found, "anomaly", user="oracle", note="notebook 03 oracle", **versions)
        store.add(normal, "normal", user="oracle", note="notebook 03 oracle", **versions)
        print(store.counts())
    """),
    md("""
    ## Fine-tune on the labels

    `finetune_workspace` trains on the labels and re-embeds every object into a **new** embedding version; the
    old one stays, so the two can be compared. `head_only=True` keeps the self-supervised encoder frozen and
    learns a small label-aware block appended to each embedding (fast; without it the last encoder blocks train
    too). Light-curve labels are reported and skipped: only image encoders are tuned so far.
    ([docs/encoders.md](../docs/encoders.md))
    """),
    code("""
    from explorer.models.finetune import compare_versions, finetune_workspace

    before = {"embeddings": ws.current("embeddings"), "maps": ws.current("maps"), "scores": ws.current("scores")}
    tuned = finetune_workspace(ws, head_only=True, epochs=3, seed=0)
    after = {
        "embeddings": tuned,
        "maps": workspace_ops.map_workspace(ws, method="pca"),
        "scores": workspace_ops.score_workspace(ws),
    }
    print("before:", before)
    print("after: ", after)
    comparison = compare_versions(ws, before["embeddings"], after["embeddings"])
    width = max(map(len, comparison))
    for key, value in comparison.items():
        print(f"{key:>{width}}: {value:.3f}" if isinstance(value, float) else f"{key:>{width}}: {value}")
    """),
    md("""
    How to read these numbers (`_old` on the embeddings before, `_new` after):

    * `neighbour_jaccard`: how much each object's ten nearest neighbours stayed the same (1 = unchanged);
    * `knn_accuracy`: how often the neighbours of a labelled object vote for its own label. With a handful of
      anomalies among 150 labels, an embedding that puts every anomaly among normal objects still scores about
      0.95, so read `knn_balanced_accuracy` (the same, averaged over the labels: 0.5 is that useless embedding);
    * `label_margin`: how much closer objects with the same label sit than objects with different labels.

    The `_new` numbers are optimistic: they are measured on the very labels the head was trained on. For a fair
    test, hold labels out (`benchmarks/bench_finetune.py` does).

    The maps before and after, with the oddities the loop found in red and those it missed in orange:
    """),
    code("""
    found_set = set(found)


    def map_panel(version, title):
        coords, _ = ws.map(version)
        odd = coords["id"].isin(truth)
        hit = coords["id"].isin(found_set)
        return (
            hv.Points(coords, ["x", "y"]).opts(color="lightgrey", size=2)
            * hv.Points(coords[odd & ~hit], ["x", "y"], label="missed").opts(color="orange", size=7)
            * hv.Points(coords[hit], ["x", "y"], label="found").opts(color="crimson", size=7)
        ).opts(width=430, height=400, xaxis=None, yaxis=None, title=title, legend_position="bottom_right")


    (map_panel(before["maps"], f"before: {before['embeddings']}")
     + map_panel(after["maps"], f"after fine-tuning: {after['embeddings']}"))
    """),
    md("""
    Did the labels help with the oddities nobody has looked at yet? The unsupervised ranking of the embeddings
    (same method as the loop we kept; kNN for the saved scores) of the *unlabelled* objects, before and after
    fine-tuning:
    """),
    code("""
    unlabelled = list(set(ids) - set(viewed))
    left = truth & set(unlabelled)
    for name, version in (("before", before["embeddings"]), ("after", after["embeddings"])):
        e = ws.embeddings(version)
        embedding_method = "knn" if method == "saved" else method  # the saved scores' own kNN part
        ranked = AnomalyScorer(method=embedding_method, random_state=0).fit(np.asarray(e.vectors), e.ids).rank()
        top = ranked[np.isin(ranked, unlabelled)][:BUDGET]
        print(f"{name:>6}: {len(left & set(top))} of the {len(left)} unfound oddities in the top {BUDGET} "
              f"unlabelled objects ({embedding_method} ranking of the embeddings, no labels)")
    """),
    md("""
    In the dashboard the same loop is interactive: the gallery's *top candidates* are the current ranking, every
    label re-ranks them, the discovery panel draws this curve for your own labels, and the fine-tune panel runs
    `finetune_workspace` in the background. `explorer labels anomaly-hunt --history` lists every label event.
    """),
]


# ----------------------------------------------------------------------------------------------------------------
# 04 scale out
# ----------------------------------------------------------------------------------------------------------------
SCALE_OUT = [
    md("""
    # Scaling out with Dask

    The heavy steps (embedding, anomaly scores, placing objects on the map) cut the catalogue into partitions
    that each read their own rows from the workspace, so the same function runs in this process or on Dask
    workers, and gives the same numbers. This notebook runs the pipeline on a Dask `LocalCluster` (two worker
    processes on this machine) and checks it against the in-process run; then shows what changes on a real
    cluster.

    ```bash
    explorer simulate scale-demo --n 1200 --seed 1
    explorer embed scale-demo --scheduler local:2          # or tcp://scheduler-host:8786
    explorer score scale-demo --scheduler local:2
    ```
    """),
    code("""
    import shutil
    import time
    from pathlib import Path

    import numpy as np
    from dask.distributed import Client, LocalCluster

    from explorer.analysis import workspace_ops
    from explorer.data.defaults import add_simulated
    from explorer.models.embed import embed_workspace
    from explorer.workspace import Workspace

    WORKSPACE = Path("scale-demo")
    shutil.rmtree(WORKSPACE, ignore_errors=True)  # a fresh workspace each run
    ws = Workspace.create(WORKSPACE)
    print(add_simulated(ws, 1200, seed=1))
    """),
    md("""
    ## A cluster on this machine

    Two single-threaded worker processes. On a laptop this is how to use its cores; on a cluster only the address
    changes. Every task opens the workspace **by its path**, so workers must see the same folder (here they
    trivially do).
    """),
    code("""
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    address = cluster.scheduler_address
    print(address, "workers:", len(client.scheduler_info()["workers"]), "dashboard:", client.dashboard_link)
    """),
    md("""
    ## Embed on the cluster, and in process

    `embed_workspace(ws, scheduler=address)` submits one task per partition of whole batches (with retries: a
    worker that dies mid-task is replaced and its task rerun). The in-process run feeds the encoders the very same
    batches, so the vectors agree.
    """),
    code("""
    t0 = time.perf_counter()
    on_dask = embed_workspace(ws, scheduler=address)
    t1 = time.perf_counter()
    in_process = embed_workspace(ws)
    t2 = time.perf_counter()
    a = np.asarray(ws.embeddings(on_dask).vectors)
    b = np.asarray(ws.embeddings(in_process).vectors)
    assert (ws.embeddings(on_dask).ids == ws.embeddings(in_process).ids).all()
    print(f"Dask: {on_dask} in {t1 - t0:.1f} s (includes starting torch in each worker); "
          f"in process: {in_process} in {t2 - t1:.1f} s")
    print(f"largest difference between the two: {np.abs(a - b).max():.2g}")
    ws.set_current("embeddings", on_dask)
    """),
    md("""
    ## Scores and map positions in partitions

    Beyond `sample_size` objects (or whenever a scheduler is given) the anomaly scorer and the map are
    *fitted* once, here, on a seeded sample, and every object is scored and placed in partitions of `part_rows`,
    each read by a worker from the memory-mapped embeddings. Small numbers here so that 1,200 objects make
    several partitions; the defaults are a 200,000-object sample and 262,144 rows per partition.
    """),
    code("""
    dask_scores = workspace_ops.score_workspace(ws, scheduler=address, sample_size=600, part_rows=300)
    local_scores = workspace_ops.score_workspace(ws, sample_size=600, part_rows=300)
    s_dask, s_local = ws.scores(dask_scores)[0], ws.scores(local_scores)[0]
    assert s_dask["id"].equals(s_local["id"])
    print(f"scores {dask_scores} (Dask) vs {local_scores} (in process): "
          f"largest difference {np.abs(s_dask['score'] - s_local['score']).max():.2g}")

    dask_map = workspace_ops.map_workspace(ws, method="pca", scheduler=address, sample_size=600, part_rows=300)
    coords, meta = ws.map(dask_map)
    print(dask_map, {k: meta[k] for k in ("method", "fit_sample", "scheduler")})
    """),
    md("""
    PCA keeps this notebook quick. For a UMAP map of millions of objects, fit UMAP on a sample and place the rest
    by nearest fitted neighbours (`placement="knn"`, FAISS; about 100 times faster than UMAP's own `transform`):

    ```python
    workspace_ops.map_workspace(ws, method="umap", sample_size=100_000, placement="knn", scheduler=address)
    ```

    ```bash
    explorer map WS --scheduler tcp://scheduler-host:8786 --sample 100000 --placement knn
    ```
    """),
    code("""
    client.close()
    cluster.close()
    """),
    md("""
    ## On a real cluster

    Only the address changes, plus three things the LocalCluster gave for free:

    1. **the same workspace path on every worker**: put the workspace on a shared file system (NFS, Lustre,
       GPFS) mounted at the same path everywhere;
    2. **the same software**: the same `astro-embedding-explorer` (and torch) version in the workers' Python;
    3. **the encoders**: shipped ones live in the package's `assets/` (or set `EXPLORER_ASSETS` to a shared
       folder); your own checkpoints live inside the workspace, so they travel with it.

    By hand, with Dask's own commands:

    ```bash
    dask scheduler --port 8786                                   # on the head node
    dask worker tcp://head-node:8786 --nworkers 8 --nthreads 1   # on each compute node
    explorer embed /shared/surveys/my-ws --scheduler tcp://head-node:8786
    ```

    On a batch system, `dask-jobqueue` (not installed with the explorer) starts workers as jobs:

    ```python
    from dask_jobqueue import SLURMCluster
    from dask.distributed import Client

    cluster = SLURMCluster(cores=8, processes=8, memory="32GB", walltime="02:00:00")
    cluster.scale(jobs=4)                    # 4 jobs × 8 single-thread workers
    client = Client(cluster)
    embed_workspace(ws, scheduler=cluster.scheduler_address)
    ```

    GPU workers: pass `device="cuda"` to `embed_workspace` (or `explorer embed --device cuda`).

    What else changes at millions of objects (simulated cutouts rendered on demand, float16 vectors, the FAISS
    similarity index, a datashaded map of 10M points): [docs/scale.md](../docs/scale.md).
    """),
]


# ----------------------------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------------------------
NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_bring_your_own_data.ipynb": BRING_YOUR_OWN,
    "03_anomaly_hunt_and_finetune.ipynb": ANOMALY_HUNT,
    "04_scale_out.ipynb": SCALE_OUT,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` as an nbformat object, outputs empty, cell ids ``<NN>-<cell number>``."""
    prefix = name.split("_", 1)[0]
    cells = []
    for i, (kind, source) in enumerate(NOTEBOOKS[name]):
        make = new_markdown_cell if kind == "markdown" else new_code_cell
        cells.append(make(source, id=f"c{prefix}-{i:02d}"))
    nb = new_notebook(cells=cells)
    nb.metadata.update(
        {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
    )
    return nb


def render(name: str) -> str:
    """The text of the ``.ipynb`` file for ``name``."""
    return nbformat.writes(build(name)) + "\n"


def stale() -> list[str]:
    """Notebooks whose file on disk differs from this source (or is missing)."""
    return [n for n in NOTEBOOKS if not (HERE / n).exists() or (HERE / n).read_text() != render(n)]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for name in bad:
            print(f"{name} differs from notebooks/_build.py; run `python notebooks/_build.py`")
        return 1 if bad else 0
    for name in NOTEBOOKS:
        (HERE / name).write_text(render(name))
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
