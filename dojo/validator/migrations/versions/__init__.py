"""Revisions of the validator's task database, oldest first."""
