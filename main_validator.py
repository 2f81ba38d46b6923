"""Entry point of the Dojo validator: `python main_validator.py --netuid 98 --wallet.name ... --axon.port 9603`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from dojo.export import ScheduledExport
    from dojo.validator.config import ValidatorConfig
    from dojo.validator.neuron import ValidatorNeuron
    from template.config import parse_settings
    from template.neuron import run_neuron

    config = parse_settings(ValidatorConfig, argv, prog="main_validator.py")
    # The export reads the validator's database and imports the validator, so the validator
    # is handed the export it runs on schedule (--export.interval) rather than importing it.
    return run_neuron(ValidatorNeuron, config, export=ScheduledExport())


if __name__ == "__main__":
    sys.exit(main())
