"""paczero: PAC-private zeroth-order fine-tuning of language models (PACZero, arXiv 2605.06505).

Python API::

    import paczero
    result = paczero.train("configs/sst2-smollm2-zpl.yaml", ["train.steps=50"])
    print(result.run_dir, result.test["accuracy"], result.statement.summary)

``paczero.train`` also takes a config as a dict or a :class:`Config`, records as ``datasets`` objects and a model
already loaded (:func:`paczero.api.train`).
"""

from paczero.about import __version__, versions  # noqa: E402
from paczero.config import Config  # noqa: E402
from paczero.settings import load_config  # noqa: E402
from paczero.errors import PaczeroError  # noqa: E402
from paczero.api import TrainResult, train  # noqa: E402

__all__ = ["Config", "PaczeroError", "TrainResult", "__version__", "load_config", "train", "versions"]
