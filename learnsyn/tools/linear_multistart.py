"""A random multi-start search for the strongest linear synapse in the bounded scenario.

``python -m learnsyn.tools.linear_multistart --levels 16 --starts 100 --evaluations 2500 --seed 2
--out ms16.json`` draws ``--starts`` random ``linear-range`` synapses of ``--variables`` variables
(A with a complex pair of modulus 0.9-1.1 or two real eigenvalues of either sign and modulus
0.9-1.1, in a random basis; b about a level spacing; a random readout; a drive up to two
spacings), keeps a draw only if its area is above ``--min-start`` (an area of 0 is flat: no
search moves from it), and polishes each with ``linear-range``'s step 5
(``baselines.linear_range.polish_exact``: Nelder-Mead rounds over the modes and over every entry
of A, b, c and the drive) on the exact level grid, ``--evaluations`` exact evaluations a start.

Why: ``linear-range``'s own search is local (it starts from the stable optimum, its inflations
and, since session 22, a difference integrator), and a review's random multi-start found a shape
it had missed (the difference integrator: +8.8 % at 8 levels). A claim that a nonlinear synapse
beats every linear synapse of its size stands only against such searches; this one makes them a
command. Start k draws from ``numpy.random.default_rng([seed, k])``, so a start's outcome does
not depend on the others and an interrupted search resumes exactly (``--resume``).

Writes ``--out`` (atomically, after every start): the settings, each start's area before and
after and its evaluations, and the best synapse's ``linear-range`` parameters (``learnsyn
evaluate --model linear-range --param ...`` evaluates it again).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the keywords of every exact evaluation (README's bounded setting: N = 1000, horizon 600,
#: area above 1, large-n, burn-in 1500)
DEFAULTS = {"synapses": 1000, "horizon": 600, "burn_in": 1500}


def random_start(rng: np.random.Generator, variables: int, spacing: float) -> dict[str, Any]:
    """One random ``linear-range`` synapse (module docstring)."""
    from learnsyn.baselines.optimal_linear import _json_params, params_from_form

    blocks = []
    left = variables
    while left > 0:
        if left >= 2 and rng.integers(3) == 0:  # a complex pair
            radius, angle = rng.uniform(0.9, 1.1), rng.uniform(0, math.pi)
            cos, sin = radius * math.cos(angle), radius * math.sin(angle)
            blocks.append(np.array([[cos, -sin], [sin, cos]]))
            left -= 2
        else:  # a real eigenvalue of either sign
            blocks.append(np.array([[rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.1)]]))
            left -= 1
    eigen = np.zeros((variables, variables))
    at = 0
    for block in blocks:
        eigen[at : at + len(block), at : at + len(block)] = block
        at += len(block)
    basis = rng.normal(size=(variables, variables))
    if abs(np.linalg.det(basis)) < 0.2:
        basis = np.eye(variables)
    A = basis @ eigen @ np.linalg.inv(basis)
    b = rng.normal(size=variables) * spacing * rng.uniform(0.3, 3.0)
    c = rng.normal(size=variables)
    drive = rng.normal(size=variables) * spacing * rng.uniform(0.0, 2.0)
    return _json_params(params_from_form(A, b, c, drive=drive))


def multistart(
    *,
    levels: int,
    variables: int = 2,
    starts: int,
    evaluations: int,
    seed: int = 0,
    min_start: float = 60.0,
    out: str | Path | None = None,
    resume: bool = False,
    log=print,
    **setting: int,
) -> dict[str, Any]:
    """The search (module docstring); returns the report also written to ``out``."""
    from learnsyn.baselines.linear_range import RangeLinearSynapse, polish_exact
    from learnsyn.estimate.grid import check_grid_size
    from learnsyn.estimate.snr import BoundViolation
    from learnsyn.evaluate import evaluate
    from learnsyn.io import atomic_write_json, check_output_file, read_json
    from learnsyn.scenario import make_scenario

    for name, value, least in (("levels", levels, 2), ("variables", variables, 1),
                               ("starts", starts, 1), ("evaluations", evaluations, 1)):  # fmt: skip
        if value < least:
            raise ValueError(f"--{name} {value} is not allowed: need at least {least}")
    setting = {**DEFAULTS, **setting}
    scenario = make_scenario("bounded", {"levels": levels})
    check_grid_size(scenario.params["levels"], variables)
    check_output_file(out, "--out")
    settings = {"levels": levels, "variables": variables, "starts": starts,
                "evaluations": evaluations, "seed": seed, "min_start": min_start,
                **setting}  # fmt: skip
    report: dict[str, Any] = {"settings": settings, "metric": "area", "convention": "large-n",
                              "method": "exact", "runs": [], "best": None}  # fmt: skip
    if resume and out is not None and Path(out).exists():
        saved = read_json(out)
        differing = sorted(k for k in settings if saved.get("settings", {}).get(k) != settings[k])
        if differing:
            raise ValueError(f"--resume with settings that differ from {out}'s in {differing}")
        report = saved
    elif out is not None and Path(out).exists():
        raise ValueError(f"{out} exists; pass --resume to continue it or choose another --out")
    spacing = 2.0 * scenario.params["bound"] / (levels - 1)
    keywords = dict(convention="large-n", method="exact", **setting)

    def value_of(params: dict[str, Any]) -> float:
        try:
            model = RangeLinearSynapse(**params)
        except ValueError:  # A's radius above the family's cap
            return -math.inf
        try:
            value = float(evaluate(model, scenario, **keywords).metrics["area"])
        except BoundViolation:  # a numerical failure of the exact method: no candidate
            return -math.inf
        return value if math.isfinite(value) else -math.inf

    begun = time.perf_counter()
    for index in range(len(report["runs"]), starts):
        rng = np.random.default_rng([seed, index])
        draws, start_value = 0, -math.inf
        while not start_value > min_start:  # a start with some memory
            if draws == 1000:
                raise ValueError(f"no random start above --min-start {min_start} in 1000 draws")
            start = random_start(rng, variables, spacing)
            start_value, draws = value_of(start), draws + 1
        params, value, used = polish_exact(start, value_of, evaluations)
        run = {"start": index, "draws": draws, "start_value": start_value, "value": value,
               "evaluations": used, "params": params}  # fmt: skip
        report["runs"].append(run)
        if report["best"] is None or value > report["best"]["value"]:
            report["best"] = run
        if out is not None:
            atomic_write_json(out, report)
        log(f"start {index + 1}/{starts}: {start_value:.2f} -> {value:.2f} ({used} evaluations); "
            f"best {report['best']['value']:.2f}; {time.perf_counter() - begun:.0f} s")  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m learnsyn.tools.linear_multistart",
        description="Random multi-start search for the strongest linear synapse in bounded, "
        "exactly on the level grid (module docstring).",
    )
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--variables", type=int, default=2)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--evaluations", type=int, default=2500, help="exact evaluations a start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-start", type=float, default=60.0,
                        help="redraw a start whose area is not above this")  # fmt: skip
    parser.add_argument("--synapses", type=int, default=DEFAULTS["synapses"])
    parser.add_argument("--horizon", type=int, default=DEFAULTS["horizon"])
    parser.add_argument("--burn-in", type=int, default=DEFAULTS["burn_in"])
    parser.add_argument("--out", help="the report (JSON), written after every start")
    parser.add_argument("--resume", action="store_true", help="continue the report in --out")
    args = parser.parse_args(argv)
    try:
        report = multistart(
            levels=args.levels, variables=args.variables, starts=args.starts,
            evaluations=args.evaluations, seed=args.seed, min_start=args.min_start,
            out=args.out, resume=args.resume, synapses=args.synapses, horizon=args.horizon,
            burn_in=args.burn_in, log=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    best = report["best"]
    print(f"best of {len(report['runs'])} starts: {best['value']:.4f} (start {best['start']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
