"""Revisions of the synthetic service's database, oldest first."""
