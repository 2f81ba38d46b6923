"""The miner tests' shared network: the platform, its chain and the validators (from test_neuron)."""

from tests.dojo.miner.test_neuron import net  # noqa: F401 - a fixture
