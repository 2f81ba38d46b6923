"""Tests of the miner: its store, its handlers against the real platform, its crash safety."""
