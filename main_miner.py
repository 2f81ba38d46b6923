"""Entry point of the Dojo miner: `python main_miner.py --netuid 98 --wallet.name ... --axon.port 9602`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from dojo.miner.config import MinerConfig
    from dojo.miner.neuron import MinerNeuron
    from template.config import parse_settings
    from template.neuron import run_neuron

    config = parse_settings(MinerConfig, argv, prog="main_miner.py")
    return run_neuron(MinerNeuron, config)


if __name__ == "__main__":
    sys.exit(main())
