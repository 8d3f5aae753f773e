"""Tasks and data: records, the pool/dev/test split, and prompt encoding."""

from paczero.data.sst2 import load_sst2
from paczero.data.tasks import ClassificationTask, Example, Split, make_split, load_task_data

__all__ = ["ClassificationTask", "Example", "Split", "load_sst2", "load_task_data", "make_split"]
