"""Tasks and data: records, the pool/dev/test split, and prompt encoding."""

from paczero.data.sst2 import load_sst2
from paczero.data.registry import load_task
from paczero.data.tasks import ClassificationTask, Example, GenerationExample, GenerationTask, Split, make_split

__all__ = ["ClassificationTask", "Example", "GenerationExample", "GenerationTask", "Split", "load_sst2", "load_task",
           "make_split"]
