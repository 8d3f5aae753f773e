"""paczero: PAC-private zeroth-order fine-tuning of language models (PACZero, arXiv 2605.06505).

Python API::

    import paczero
    cfg = paczero.load_config("configs/sst2-smollm2-zpl.yaml", ["train.steps=50"])
    metrics = paczero.train(cfg)
    print(metrics["test"]["accuracy"], metrics["privacy"]["summary"])
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


def train(config: Config, *, config_name: str | None = None) -> dict:
    """Run one training job (see :class:`paczero.trainer.Trainer`) and return its metrics."""
    from paczero.trainer import train as _train

    return _train(config, config_name=config_name)


__all__ = ["Config", "PaczeroError", "__version__", "load_config", "train", "versions"]
