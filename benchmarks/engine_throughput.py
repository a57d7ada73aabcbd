"""Benchmark: throughput of the full default model (arrivals, transitions, observation) at 1 and 2 threads.

Workload: the engine's monthly loop (``sim.engine.run_replicate``) at ``--scale`` (default 2.0, about 1,000,000
individuals alive) for ``--months`` months (default 120: April 2015 to March 2025), default parameters, from a
spin-up pool built once. Child-steps = sum over months of individuals alive. Reports, per thread count:
child-steps/s for the monthly loop (kernel, arrivals, reservoirs, 31 March counts), for the transition
kernel alone (``sim.kernel.step_month``) and for the whole replicate including its setup (resampling the
31 March 2015 stock from the pool), wall times, peak memory, and bytes per simulated child (struct of
arrays, plus the 4-byte vacancy list). Each thread count runs in its own subprocess so peak memory is its own.

``--capacity`` applies the foster capacity constraint (``agents/capacity.py``: the per-chunk entrant lists in the
kernel and the monthly serial allocation), to measure what it costs.

Run from the repository root:  python -m benchmarks.engine_throughput [--scale 2.0] [--months 120] [--repeat 3]
[--capacity]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def measure(threads: int, scale: float, months: int, repeat: int, capacity: bool = False) -> dict:
    """Run in this process: warm-up compile, then ``repeat`` timed replicates; best of the repeats."""
    import numba

    from calibration.inputs import START_YEAR, build
    from calibration.parameters import base_parameters, resolve
    from sim import engine, kernel
    from sim.population import BYTES_PER_SLOT

    numba.set_num_threads(threads)
    params = resolve(base_parameters())
    inputs = build()
    end_year = START_YEAR + months // 12
    tables = engine.YearTables.build(params, START_YEAR + 1, end_year)
    small, _ = engine.spin_up(params, inputs, tables, 1, 0.01)
    engine.run_replicate(params, inputs, tables, 1, engine.Settings(end_year=START_YEAR + 1, scale=0.01), small)
    pool, _ = engine.spin_up(params, inputs, tables, 1, scale)
    kernel_time = [0.0]
    step = kernel.step_month

    def timed_step(*args):
        t = time.perf_counter()
        step(*args)
        kernel_time[0] += time.perf_counter() - t

    best = None
    for r in range(repeat):
        kernel_time[0] = 0.0
        engine.kernel.step_month = timed_step
        t0 = time.perf_counter()
        res = engine.run_replicate(params, inputs, tables, 100 + r,
                                   engine.Settings(end_year=end_year, scale=scale, capacity=capacity), pool)
        wall = time.perf_counter() - t0
        engine.kernel.step_month = step
        steps = int(res.alive[:-1].sum())
        loop = res.info["loop_seconds"]
        row = {"wall_s": wall, "loop_s": loop, "kernel_s": kernel_time[0], "child_steps": steps,
               "replicate_msteps_s": steps / wall / 1e6, "loop_msteps_s": steps / loop / 1e6,
               "kernel_msteps_s": steps / kernel_time[0] / 1e6,
               "alive_mean": float(res.alive.mean()), "capacity": res.info["capacity"]}
        if best is None or row["wall_s"] < best["wall_s"]:
            best = row
    best.update(threads=threads, numba_threading_layer=numba.threading_layer(), bytes_per_slot=BYTES_PER_SLOT,
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                bytes_per_alive_child=BYTES_PER_SLOT * best["capacity"] / best["alive_mean"])
    return best


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    import numba
    import numpy
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {numpy.__version__}, "
            f"numba {numba.__version__}, {platform.system()} {platform.release()}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--months", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="internal: run one thread count in this process")
    ap.add_argument("--capacity", action="store_true", help="apply the foster capacity constraint")
    a = ap.parse_args(argv)
    if a.threads:
        print(json.dumps(measure(a.threads, a.scale, a.months, a.repeat, a.capacity)))
        return 0
    rows = []
    for th in (1, 2):
        out = subprocess.run([sys.executable, "-m", "benchmarks.engine_throughput", "--threads", str(th),
                              "--scale", str(a.scale), "--months", str(a.months), "--repeat", str(a.repeat)]
                             + (["--capacity"] if a.capacity else []),
                             cwd=ROOT, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"machine: {machine()}")
    print(f"workload: full default model, scale {a.scale} ({rows[0]['alive_mean']:,.0f} individuals alive on "
          f"average), {a.months} months, best of {a.repeat}, foster capacity constraint "
          f"{'on' if a.capacity else 'off'}")
    print("| threads | layer | monthly loop child-steps/s | kernel child-steps/s | replicate incl. setup | "
          "loop (s) | replicate (s) | peak RSS (MiB) | bytes/child |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['numba_threading_layer']} | {r['loop_msteps_s']:.0f}M | "
              f"{r['kernel_msteps_s']:.0f}M | {r['replicate_msteps_s']:.0f}M | {r['loop_s']:.2f} | {r['wall_s']:.2f} "
              f"| {r['peak_rss_mib']:.0f} | {r['bytes_per_slot']} per slot, "
              f"{r['bytes_per_alive_child']:.1f} per alive child |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
