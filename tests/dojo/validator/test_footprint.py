"""What a validator fed by the synthetic API loads: not the in-process generator.

The generator and what it imports (scipy among them; scikit-learn and pandas too while its
duplicate filter hashed with scikit-learn) cost resident memory. A validator that takes its
tasks from ``SYNTHETIC_API_URL`` (the synthetic service runs as its own process) has no use
for them, so building its task source must not import them. Checked in a fresh interpreter, since this test run has long imported
them; the real ``ValidatorNeuron`` is built on a local chain with a real wallet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dojo.localnet.net import free_port
from template.chain.local import LocalChain
from tests.dojo.validator.test_neuron import validator_flags

NETUID = 1
ROOT = Path(__file__).resolve().parents[3]

# Builds the validator as ``dojo validator`` would (its configuration from flags) and its task
# source as its first task round does, then says which of the generator's modules are loaded.
CHILD = """
import json, sys
from commons.synthetic_api import SyntheticAPIClient
from dojo.validator.neuron import ValidatorNeuron
from template.chain.local import LocalChain
from dojo.validator.config import ValidatorConfig
from template.config import resolve

chain_dir, netuid = sys.argv[1], int(sys.argv[2])
neuron = ValidatorNeuron(resolve(ValidatorConfig, sys.argv[3:], environ={}, env_file=None), chain=LocalChain(chain_dir, netuid))
source = neuron.task_source()
heavy = ("sklearn", "scipy", "pandas", "dojo.synthetic.filter", "dojo.synthetic.pipeline")
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(json.dumps({
    "client": isinstance(source, SyntheticAPIClient),
    "loaded": sorted(name for name in heavy if name in sys.modules),
    "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
    "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
}))
"""


def test_a_validator_fed_by_the_synthetic_api_does_not_load_the_generator(tmp_path, make_wallet):
    chain = LocalChain.init(tmp_path / "chain", netuid=NETUID, block_time=0.2, exist_ok=True)
    wallet = make_wallet("validator")
    chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=1000.0)
    flags = {
        **validator_flags(tmp_path),
        "--synthetic_api_url": f"http://127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path / "chain"),
            str(NETUID),
            *[x for kv in flags.items() for x in kv],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"validator with a remote synthetic API: {report['rss_mb']:.0f} MB resident (peak {report['hwm_mb']:.0f})"
    )
    assert report["client"] is True
    assert report["loaded"] == []
