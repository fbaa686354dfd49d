"""Build a SYNTHETIC cohort: `python -m pipelines.simulate --n 5000 --seed 7 --output data/synthetic`.

`--world NAME` (or ``[simulate] world = "NAME"`` in a `--config` TOML file) picks a structural
variant of the population (simulator/worlds.py); `--list-worlds` lists them. The default world is
the generator as designed, and the world's name is written into ground_truth.json and README.md.
`--dynamics NAME` (or ``[simulate] dynamics``) picks how the weekly WAI-S ratings move
(simulator/weekly.py: steady, the generator before issue 19; realistic; volatile);
`--list-dynamics` lists them.

Writes the four contract tables (intake, counsellors, alliance, episodes), ground_truth (true
probabilities and realised labels), ground_truth.json and a README.md that say the data are
synthetic, how they were generated and the true driver ranking. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time

from pipelines import cli
from simulator import effects as fx

DEFAULT_OUTPUT = "data/synthetic"  # in the checkout: where pipelines.train looks by default


def _parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "simulate",
        "Generate a SYNTHETIC cohort (not real data) following data contract v1, with a ground-truth "
        "file of true low-alliance probabilities. All effect sizes and their sources: "
        "simulator/effects.py.",
        raw=False,
    )
    p.add_argument("--n", type=int, default=5000, help="number of admissions (default %(default)s)")
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed; same seed, byte-identical files (default %(default)s)",
    )
    cli.add_output(
        p,
        f"output folder (default: {DEFAULT_OUTPUT} in the checkout, where pipelines.train looks; "
        "a relative path is taken from the working folder)",
        aliases=("--out",),
        metavar="DIR",
    )
    p.add_argument(
        "--services",
        type=int,
        default=6,
        help="number of services, at least 3 (default %(default)s)",
    )
    p.add_argument(
        "--counsellors-per-service",
        type=int,
        default=12,
        help="counsellors in each service (default %(default)s)",
    )
    p.add_argument(
        "--item-fraction",
        type=float,
        default=None,
        help="share of clients whose record carries item responses instead of scale scores "
        f"(default: the world's, {fx.value('missing.p_item_level_client')} in the default world)",
    )
    p.add_argument(
        "--mc-draws",
        type=int,
        default=fx.value("ground_truth.mc_draws"),
        help="Monte-Carlo draws per admission for the ground-truth probabilities "
        "(default %(default)s)",
    )
    p.add_argument(
        "--no-ground-truth", action="store_true", help="skip the Monte-Carlo probabilities (faster)"
    )
    p.add_argument(
        "--format",
        choices=("csv", "parquet"),
        default="csv",
        help="file format of the tables (default %(default)s)",
    )
    cli.add_quiet(p)
    p.add_argument(
        "--world",
        help="structural variant of the population (see --list-worlds); default: [simulate] "
        "world of --config, else 'default'",
    )
    p.add_argument("--list-worlds", action="store_true", help="list the worlds and exit")
    p.add_argument(
        "--dynamics",
        help="weekly dynamics of the WAI-S ratings in weeks 1-3 (see --list-dynamics): 'steady' "
        "(one level per client, small week noise: the generator before issue 19), 'realistic' "
        "(session-to-session variation, per-client trends, ruptures with partial repair, a "
        "stronger ceiling; sources in simulator/effects.py) or 'volatile'; default: [simulate] "
        "dynamics of --config, else 'steady'",
    )
    p.add_argument(
        "--list-dynamics", action="store_true", help="list the weekly-dynamics presets and exit"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = cli.console(stderr=True)
    from simulator import weekly, worlds

    if args.list_worlds:
        print("SYNTHETIC worlds (simulator/worlds.py):")
        print(worlds.listing())
        return 0
    if args.list_dynamics:
        print("SYNTHETIC weekly dynamics (simulator/weekly.py):")
        print(weekly.listing())
        return 0
    settings, code = cli.settings_or_exit(err, args.config)
    if settings is None:
        return code
    world = args.world or settings.simulate.world
    try:
        worlds.get(world)
    except ValueError as e:
        print(f"simulate: world (--world, [simulate] world or environment): {e}", file=sys.stderr)
        return 2
    dynamics = args.dynamics or settings.simulate.dynamics
    try:
        weekly.get(dynamics)
    except ValueError as e:
        print(
            f"simulate: dynamics (--dynamics, [simulate] dynamics or environment): {e}",
            file=sys.stderr,
        )
        return 2
    from features.settings import ROOT
    from simulator.generator import generate, write  # numpy/pandas only when actually generating

    out = args.output or ROOT / DEFAULT_OUTPUT
    t0 = time.perf_counter()
    with cli.steps(err, quiet=args.quiet) as s:
        t = s.start(f"generating a SYNTHETIC cohort of {args.n} admissions (seed {args.seed})")
        try:
            cohort = generate(
                args.n,
                args.seed,
                n_services=args.services,
                counsellors_per_service=args.counsellors_per_service,
                item_fraction=args.item_fraction,
                mc_draws=args.mc_draws,
                ground_truth=not args.no_ground_truth,
                world=world,
                dynamics=dynamics,
            )
        except ValueError as e:
            s.stop()
            print(f"simulate: {e}", file=sys.stderr)
            return 2
        s.done(t, f"generated {args.n} admissions")
        t = s.start(f"writing {args.format} tables to {out}")
        paths = write(cohort, out, args.format)
        s.done(t, f"wrote {len(paths)} files")
    m = cohort.meta
    total = time.perf_counter() - t0
    print(
        f"SYNTHETIC cohort written to {out} ({args.format}), world {m['world']}, "
        f"dynamics {m['dynamics']}"
    )
    print(
        f"  admissions {m['n_admissions']}, services {m['n_services']}, counsellors "
        f"{m['n_services'] * m['counsellors_per_service']}, rating rows {len(cohort.alliance)}"
    )
    print(
        f"  early leavers {m['early_leavers']}, labelled (client) {m['labelled_client']}, item-level records "
        f"{m['item_level_clients']}, counsellor unknown {m['counsellor_unknown_at_admission']}, "
        f"a form missing {m['any_form_missing']}"
    )
    print(
        f"  low alliance prevalence: client {m['prevalence_client']}, counsellor {m['prevalence_counsellor']} "
        f"(threshold {m['label']['threshold']})"
    )
    if "mean_p_low_alliance_client_labelled" in m:
        print(
            f"  ground truth: mean P(low | record, labelled) {m['mean_p_low_alliance_client_labelled']} "
            f"({m['mc_draws']} draws, mean MC SE {m['mean_mc_se_client']})"
        )
    print("  true driver ranking: " + ", ".join(r["group"] for r in cohort.driver_ranking))
    print(
        f"  time: generate {m['timing_generate_s']} s, ground truth {m.get('timing_ground_truth_s', 0)} s, "
        f"total with writing {total:.2f} s; files: {', '.join(p.name for p in paths)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
