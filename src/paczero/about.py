"""The package's version and the versions of the libraries that determine a run's numbers (a leaf: it imports
nothing of the package, so the recipe can record them without importing the package's public face)."""

from __future__ import annotations

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that determine a run's numbers (stored in metrics.json)."""
    import platform

    import numpy
    import peft
    import torch
    import transformers

    return {"paczero": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "numpy": numpy.__version__}
