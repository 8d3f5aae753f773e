"""Progress a person can see: a live bar on stderr for every phase longer than a few seconds.

A phase whose work cannot be counted (loading a model, caching the frozen bottom, an evaluation) shows its
description and a clock that ticks while it runs; counted work (training steps, replay, audit passes) shows a
counter. Bars appear only when ``run.progress`` is on and stderr is a terminal (tqdm's ``disable=None``) or the code
runs in a Jupyter kernel (``tqdm.auto`` then draws a widget, or text where ipywidgets is missing), so logs and
tests stay clean. For the DP baselines the training bar shows the step count only: its rate would time the
secret Poisson batches.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from tqdm.auto import tqdm

TICK_S = 0.5


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (where stderr is no terminal but shows bars)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def bar(*, total: int | None, desc: str, unit: str, enabled: bool, initial: int = 0, timed: bool = True) -> tqdm:
    """A progress bar (hidden unless ``enabled`` and stderr is a terminal or a notebook's); ``timed=False`` hides
    rate and clock."""
    fmt = None if timed else "{desc}: {n_fmt}/{total_fmt} " + unit + "s"
    disable = True if not enabled else (False if in_notebook() else None)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, bar_format=fmt,
                disable=disable)


@contextmanager
def phase(desc: str, *, enabled: bool) -> Iterator[None]:
    """Show ``desc`` with a ticking clock while the block runs (one line, replaced by its final time)."""
    shown = bar(total=None, desc=desc, unit="s", enabled=enabled)
    shown.bar_format = "{desc}: {elapsed}"
    if shown.disable:
        yield
        return
    done = threading.Event()

    def tick() -> None:
        while not done.wait(TICK_S):
            shown.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        shown.refresh()
        shown.close()
