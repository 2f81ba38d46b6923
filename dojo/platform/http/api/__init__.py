"""The JSON routes of the Dojo API under ``/api/v1`` (contract: ``docs/platform-api.md``)."""
