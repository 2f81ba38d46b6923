"""``dojo simulate``: run an incentive scenario through the validator's scoring."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run an incentive scenario through the scoring",
        description="Simulate rounds of tasks answered by groups of honest and dishonest miners, "
        "score them with the validator's own scoring and aggregation, and write results.json, "
        "summary.md and weights.png into the output folder. A scenario with 'validators' runs several "
        "validators and the chain's Yuma consensus over their weights (incentive.png instead of "
        "weights.png). Scenario format: docs/scoring.md and the files in scenarios/.",
    )
    parser.add_argument("scenario", help="scenario JSON file (see scenarios/)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument(
        "--commit-reveal-period",
        dest="commit_reveal_period",
        type=int,
        default=None,
        help="override the scenario's commit-reveal period (rounds; 0: off), for scenarios with validators",
    )
    parser.add_argument("--debug", action="store_true", help="log every round's scoring")
    parser.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from dojo.simulate import Scenario, ScenarioError, simulate, summary_markdown, write_outputs
    from template.log import setup_logging

    setup_logging(debug=args.debug, neuron="simulate")
    try:
        scenario = Scenario.load(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        scenario = replace(scenario, seed=args.seed)
    if args.commit_reveal_period is not None:
        scenario = replace(scenario, commit_reveal_period=args.commit_reveal_period)
    if scenario.validators:
        from dojo import simulate_network

        network = simulate_network.simulate_network(scenario)
        summary = simulate_network.summary_markdown(network)
        paths = write_outputs(network, summary, args.out, "incentive.png", "Incentive share by group")
    else:
        result = simulate(scenario)
        summary = summary_markdown(result)
        paths = write_outputs(result, summary, args.out)
    print(summary, end="")
    print(f"\nwrote {paths['results']}, {paths['summary']} and {paths['plot']}")
    return 0
