"""The Bittensor plumbing, nothing Dojo-specific: configuration, the neuron lifecycle, the
chain adapter (real subtensor or local chain) and the signed HTTP transport.

Nothing in this package imports ``commons`` or ``dojo``.
"""

__version__ = "0.1.0"
# The version key sent with weights: major*1000 + minor*10 + patch, as subnets conventionally do.
SPEC_VERSION = 10
