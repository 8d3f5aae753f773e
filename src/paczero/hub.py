"""The Hugging Face hub, when it cannot be reached: fail in a second instead of a minute of retries.

Before paczero asks the hub for a model or a data set by name, :func:`hub_reachable` sends one request with a short
timeout (through the environment's ``https_proxy``, as the hub's own client would). When it gets no answer, or
``HF_HUB_OFFLINE`` is set, only the local Hugging Face cache is read (:func:`cache_only`), so a name that is not
cached fails at once with an error that says why.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Iterator

TIMEOUT_S = 3.0
"""How long the check that the hub answers may take."""


def hub_reachable(timeout: float = TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` seconds (never with ``HF_HUB_OFFLINE`` set)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True


@contextmanager
def cache_only(offline: bool) -> Iterator[None]:
    """With ``offline``, ``huggingface_hub`` and ``datasets`` in offline mode for the block (the cache only, no
    retries); otherwise nothing changes."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    modules = [constants]
    try:
        import datasets

        modules.append(datasets.config)
    except ImportError:
        pass
    saved = [m.HF_HUB_OFFLINE for m in modules]
    for m in modules:
        m.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for m, value in zip(modules, saved):
            m.HF_HUB_OFFLINE = value
