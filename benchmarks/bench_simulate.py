"""Benchmark of the simulated survey: catalogue parameters, cutouts and light curves of N objects.

Run::

    python benchmarks/bench_simulate.py                      # 100,000 objects, all cutouts and light curves
    python benchmarks/bench_simulate.py --n 20000 --json simulate.json
    python benchmarks/bench_simulate.py --n 10000000 --params-only   # the catalogue of 10M objects

Rendering goes in chunks of ``--chunk`` catalogue rows (memory stays flat); outputs are dropped after each
chunk. Times are wall-clock seconds in this one process; ``cpu s`` is the CPU time of the process (on a busy
shared machine it is the better guide). numpy and BLAS may use the machine's threads; set
``OPENBLAS_NUM_THREADS=1`` to pin them to one core.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from tqdm import tqdm

from explorer.data.simulate import render_cutouts, render_lightcurves, simulate_parameters


def run(n: int, chunk: int, size: int, seed: int, params_only: bool, progress: bool = True) -> dict:
    """Time the three stages for ``n`` objects and return the measurements."""
    c0, t0 = time.process_time(), time.perf_counter()
    params = simulate_parameters(n, seed=seed)
    result = {"n": n, "params_s": time.perf_counter() - t0, "cutouts_s": 0.0, "lightcurves_s": 0.0}
    result.update(
        images=int(params["has_image"].sum()), lightcurves=int(params["has_lightcurve"].sum()), points=0
    )
    if not params_only:
        for start in tqdm(range(0, n, chunk), desc="render", unit="chunk", disable=not progress):
            rows = params.iloc[start : start + chunk]
            t1 = time.perf_counter()
            render_cutouts(rows[rows["has_image"]], seed=seed, size=size)
            t2 = time.perf_counter()
            result["points"] += len(render_lightcurves(rows, seed=seed))
            t3 = time.perf_counter()
            result["cutouts_s"] += t2 - t1
            result["lightcurves_s"] += t3 - t2
    result["total_s"] = result["params_s"] + result["cutouts_s"] + result["lightcurves_s"]
    result["cpu_s"] = time.process_time() - c0
    result["objects_per_s"] = n / result["total_s"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of objects (default 100000)")
    parser.add_argument(
        "--chunk", type=int, default=4096, help="catalogue rows rendered at once (default 4096)"
    )
    parser.add_argument("--size", type=int, default=64, help="cutout side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params-only", action="store_true", help="time the catalogue only")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args()
    r = run(args.n, args.chunk, args.size, args.seed, args.params_only)
    header = f"{'n':>10} {'params s':>9} {'cutouts s':>10} {'lcurves s':>10} {'total s':>8} {'cpu s':>7} {'objects/s':>10} {'LC points':>10} {'peak MB':>8}"
    print(header)
    print(
        f"{r['n']:>10} {r['params_s']:>9.2f} {r['cutouts_s']:>10.2f} {r['lightcurves_s']:>10.2f} {r['total_s']:>8.2f} {r['cpu_s']:>7.2f} "
        f"{r['objects_per_s']:>10.0f} {r['points']:>10} {r['peak_rss_mb']:>8.0f}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=2)


if __name__ == "__main__":
    main()
