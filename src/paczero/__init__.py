"""paczero: PAC-private zeroth-order fine-tuning of language models (PACZero, arXiv 2605.06505).

Python API::

    import paczero
    result = paczero.train("configs/sst2-smollm2-zpl.yaml", ["train.steps=50"])
    print(result.run_dir, result.test["accuracy"], result.statement.summary)

``paczero.train`` also takes a config as a dict or a :class:`Config`, records as ``datasets`` objects and a model
already loaded (:func:`paczero.api.train`).
"""

__version__ = "0.1.0"

from paczero.config import Config, load_config  # noqa: E402
from paczero.errors import PaczeroError  # noqa: E402


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that determine a run's numbers (stored in metrics.json)."""
    import platform

    import numpy
    import peft
    import torch
    import transformers

    return {"paczero": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "numpy": numpy.__version__}


from paczero.api import TrainResult, train  # noqa: E402

__all__ = ["Config", "PaczeroError", "TrainResult", "__version__", "load_config", "train", "versions"]
