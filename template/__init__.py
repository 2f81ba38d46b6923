"""The Bittensor plumbing, nothing Dojo-specific: configuration, the neuron lifecycle, the
chain adapter (real subtensor or local chain) and the signed HTTP transport.

Nothing in this package imports ``commons`` or ``dojo``.
"""

__version__ = "0.1.0"
