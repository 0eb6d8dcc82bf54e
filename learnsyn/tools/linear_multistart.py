"""A random multi-start search for the strongest linear synapse in the bounded scenario.

``python -m learnsyn.tools.linear_multistart --levels 16 --starts 100 --evaluations 2500 --seed 2
--out ms16.json`` draws ``--starts`` random ``linear-range`` synapses of ``--variables`` variables
(A with a complex pair or two real eigenvalues of either sign, of moduli uniform in ``--moduli``,
0.9-1.1 by default, in a random basis (the identity where the drawn basis is nearly singular);
b about a level spacing; a random readout; a drive up to two spacings), keeps a draw only if its
area is above ``--min-start`` (0.06 N: an area of 0 is flat, no search moves from it), and
polishes each with ``linear-range``'s step 5 (``baselines.linear_range.polish_exact``:
Nelder-Mead rounds over the modes and over every entry of A, b, c and the drive) on the exact
level grid, ``--evaluations`` exact evaluations a start.

Why: ``linear-range``'s own search is local (it starts from the stable optimum, its inflations
and, since session 22, a difference integrator), and a review's random multi-start found a shape
it had missed (the difference integrator: +8.8 % at 8 levels). A claim that a nonlinear synapse
beats every linear synapse of its size stands only against such searches; this one makes them a
command. Start k draws from ``numpy.random.default_rng([seed, k])``, so a start's outcome does
not depend on the others: an interrupted search resumes exactly, and a finished one grows with
a larger ``--starts`` (``--resume``). The default moduli keep to slow modes near 1; the former
best of ``linear-range`` had an unstable mode of radius 1.5, which ``--moduli 0.5 2`` draws.

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


#: the moduli of the eigenvalues of A drawn (uniformly) by default
MODULI = (0.9, 1.1)


def random_start(
    rng: np.random.Generator, variables: int, spacing: float, moduli=MODULI
) -> dict[str, Any]:
    """One random ``linear-range`` synapse (module docstring); eigenvalue moduli uniform in
    ``moduli``."""
    from learnsyn.baselines.optimal_linear import _json_params, params_from_form

    blocks = []
    left = variables
    while left > 0:
        if left >= 2 and rng.integers(3) == 0:  # a complex pair
            radius, angle = rng.uniform(*moduli), rng.uniform(0, math.pi)
            cos, sin = radius * math.cos(angle), radius * math.sin(angle)
            blocks.append(np.array([[cos, -sin], [sin, cos]]))
            left -= 2
        else:  # a real eigenvalue of either sign
            blocks.append(np.array([[rng.choice([-1.0, 1.0]) * rng.uniform(*moduli)]]))
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
    min_start: float | None = None,
    moduli: tuple[float, float] = MODULI,
    out: str | Path | None = None,
    resume: bool = False,
    log=print,
    **setting: int,
) -> dict[str, Any]:
    """The search (module docstring); returns the report also written to ``out``."""
    from learnsyn.baselines.linear_range import MAX_RADIUS, member_value, polish_exact
    from learnsyn.estimate.grid import check_grid_size
    from learnsyn.evaluate import evaluate
    from learnsyn.io import atomic_write_json, check_output_file, read_json
    from learnsyn.scenario import make_scenario

    setting = {**DEFAULTS, **setting}
    bound = setting["synapses"] / 4.0  # the area above threshold 1 of any synapse
    if min_start is None:
        min_start = 0.06 * setting["synapses"]  # 60 at N = 1000
    for name, value, least in (("levels", levels, 2), ("variables", variables, 1),
                               ("starts", starts, 1), ("evaluations", evaluations, 1),
                               ("synapses", setting["synapses"], 1),
                               ("horizon", setting["horizon"], 1),
                               ("burn-in", setting["burn_in"], 0), ("seed", seed, 0)):  # fmt: skip
        if value < least:
            raise ValueError(f"--{name} {value} is not allowed: need at least {least}")
    if not 0 <= min_start < bound:
        raise ValueError(f"--min-start {min_start} is not allowed: need 0 <= it < N / 4 = "
                         f"{bound:g} (no synapse's area is larger)")  # fmt: skip
    if not 0 < moduli[0] <= moduli[1] <= MAX_RADIUS:  # (nan fails too)
        raise ValueError(
            f"--moduli {moduli[0]} {moduli[1]} is not allowed: need 0 < LOW <= HIGH <= "
            f"{MAX_RADIUS:g} (linear-range's largest spectral radius)"
        )
    if resume and out is None:
        raise ValueError("--resume needs --out (the report to continue)")
    scenario = make_scenario("bounded", {"levels": levels})
    check_grid_size(scenario.params["levels"], variables)
    check_output_file(out, "--out", stdout=False)  # (written after every start, resumed)
    settings = {"levels": levels, "variables": variables, "evaluations": evaluations,
                "seed": seed, "min_start": min_start, **setting}  # fmt: skip
    if tuple(moduli) != MODULI:  # (reports of the default do not name it)
        settings["moduli"] = list(moduli)
    report: dict[str, Any] = {"settings": settings, "metric": "area", "convention": "large-n",
                              "method": "exact", "runs": [], "best": None}  # fmt: skip
    if resume and Path(out).exists():
        report = _resumed(read_json(out), settings, starts, out)
    elif out is not None and Path(out).exists():
        raise ValueError(f"{out} exists; pass --resume to continue it or choose another --out")
    report["settings"]["starts"] = starts
    spacing = 2.0 * scenario.params["bound"] / (levels - 1)
    keywords = dict(convention="large-n", method="exact", **setting)

    def value_of(params: dict[str, Any]) -> float:
        value = member_value(params, lambda model: evaluate(model, scenario, **keywords), "area")
        return value if value is not None and math.isfinite(value) else -math.inf

    begun = time.perf_counter()
    for index in range(len(report["runs"]), starts):
        rng = np.random.default_rng([seed, index])
        draws, start_value = 0, -math.inf
        while not start_value > min_start:  # a start with some memory
            if draws == 1000:
                raise ValueError(f"no random start above --min-start {min_start} in 1000 draws")
            start = random_start(rng, variables, spacing, moduli)
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


def _resumed(saved: Any, settings: dict[str, Any], starts: int, out) -> dict[str, Any]:
    """The report in ``out`` to continue: the same settings (``--starts`` may grow), no more
    runs than ``starts``."""
    if not (isinstance(saved, dict) and isinstance(saved.get("runs"), list)
            and isinstance(saved.get("settings"), dict)):  # fmt: skip
        raise ValueError(f"{out} is not a linear_multistart report")
    differing = sorted(k for k in {*settings, *saved["settings"]} - {"starts"}
                       if saved["settings"].get(k) != settings.get(k))  # fmt: skip
    if differing:
        raise ValueError(f"--resume with settings that differ from {out}'s in {differing}")
    if len(saved["runs"]) > starts:
        raise ValueError(f"{out} holds {len(saved['runs'])} starts, more than --starts {starts}")
    return saved


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
    parser.add_argument(
        "--min-start",
        type=float,
        default=None,
        help="redraw a start whose area is not above this (0.06 N)",
    )
    parser.add_argument("--moduli", type=float, nargs=2, default=list(MODULI),
                        metavar=("LOW", "HIGH"), help="the eigenvalues' moduli drawn")  # fmt: skip
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
            moduli=tuple(args.moduli), out=args.out, resume=args.resume,
            synapses=args.synapses, horizon=args.horizon, burn_in=args.burn_in,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    best = report["best"]
    print(f"best of {len(report['runs'])} starts: {best['value']:.4f} (start {best['start']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
