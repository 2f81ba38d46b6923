"""Worker backends: where the miner's tasks are worked by people (``--worker_platform``).

================  ===============================================  ==============================
``--worker_platform``  backend                                     settings
================  ===============================================  ==============================
``dojo``          :class:`DojoPlatformBackend`, the Dojo platform  ``--dojo_api_base_url``,
                  (``dojo platform serve``, ours or a shared one)  ``--dojo_api_key``
``label-studio``  :class:`LabelStudioBackend`, a Label Studio      ``--label_studio.*``
                  server the miner runs                            (``LABEL_STUDIO_URL``, …)
================  ===============================================  ==============================

The interface is :class:`WorkerBackend` (``_base.py``); ``docs/miner-backends.md`` says how
to add one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dojo.miner.backends import _base
from dojo.miner.backends._base import *  # noqa: F403

if TYPE_CHECKING:
    from dojo.miner.config import MinerConfig

BACKENDS = ("dojo", "label-studio")
# The Label Studio settings the backend takes under the same names, as they are.
_AS_GIVEN = {"project_prefix", "poll_interval", "webhook_host", "webhook_port", "webhook_url"}


def open_backend(config: MinerConfig, *, hotkey: str, key_fix: str = "") -> _base.WorkerBackend:
    """The backend ``config.worker_platform`` names, from its own settings.

    Raises ValueError naming the setting when one cannot be used (a URL that is not one).
    """
    if config.worker_platform == "label-studio":
        from dojo.miner.backends.label_studio import LabelStudioBackend

        ls = config.label_studio
        return LabelStudioBackend(
            ls.url,
            ls.api_key.get_secret_value() if ls.api_key is not None else None,
            miner_hotkey=hotkey,
            **ls.model_dump(include=_AS_GIVEN),
            webhook_secret=ls.webhook_secret.get_secret_value() if ls.webhook_secret is not None else None,
        )
    from dojo.miner.backends.dojo_platform import DojoPlatformBackend

    api_key = config.dojo_api_key.get_secret_value() if config.dojo_api_key is not None else ""
    try:
        return DojoPlatformBackend(config.dojo_api_base_url, api_key or None, key_fix=key_fix)
    except ValueError as exc:
        raise ValueError(f"--dojo_api_base_url (env DOJO_API_BASE_URL): {exc}") from exc


__all__ = ["BACKENDS", *_base.__all__, "open_backend"]
