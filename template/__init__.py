"""The Bittensor plumbing, nothing Dojo-specific: configuration, the neuron lifecycle, the
chain adapter (real subtensor or local chain) and the signed HTTP transport.

Nothing in this package imports ``commons`` or ``dojo``.
"""

__version__ = "0.1.0"


def spec_version(version: str = __version__) -> int:
    """The version as one integer, the ``version_key`` sent with weights: 1.2.3 -> 1_002_003."""
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    return major * 1_000_000 + minor * 1_000 + patch
