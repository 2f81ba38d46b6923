"""A whole Dojo subnet on this machine (``dojo localnet``, :mod:`dojo.cli.localnet`).

- :mod:`dojo.localnet.net`: :class:`~dojo.localnet.net.LocalNet`, the chain, wallets and
  processes of a local network; the supervisor that starts again what exits; ``up`` and
  ``down``.
- :mod:`dojo.localnet.view`: what the network is doing, read and shown (``dojo localnet
  status`` and the live view of ``up``).
- :mod:`dojo.localnet.state`: what both read: the record ``DIR/localnet.json``, the kinds of
  process, which processes are still the network's own.
- :mod:`dojo.localnet.organic`: the organic caller ``up --organic`` runs
  (``python -m dojo.localnet.organic``).

The imports go one way, ``net`` → ``view`` → ``state`` (``tests/test_layering.py``); this
package imports none of its modules, so importing one never imports the others.
"""
