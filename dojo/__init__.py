"""The Dojo applications: miner and validator neurons, the worker platform, the synthetic
task service, the incentive simulator, the localnet and the ``dojo`` CLI."""
