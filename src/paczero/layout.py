"""Where every file name of a run folder and of an export is decided (a leaf: it imports nothing).

:mod:`paczero.rundir` builds a run folder's paths from these names; :mod:`paczero.publication` writes an export with
them; :mod:`paczero.verify`, :mod:`paczero.export` and :mod:`paczero.settings` read with them. No other module spells
a file name of a run or an export.
"""

CONFIG_FILE = "config.yaml"
"""The resolved settings as published (data paths withheld)."""
MEMBERSHIP_FILE = "membership.npy"
TRANSCRIPT_FILE = "transcript.jsonl"
EVALUATIONS_FILE = "evaluations.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS_DIR = "checkpoints"
PRIVATE_DIR = "private"
"""The run's private folder (mode 0700, files 0600): the secret and every figure computed on the pool."""
WITHHELD_PATHS_FILE = f"{PRIVATE_DIR}/paths.json"
"""Where a run keeps the data paths its published settings withhold (the owner's)."""

EXPORT_DIR = "paczero"
"""An export's folder of the public record, beside the model files."""
RUN_SETTINGS_FILE = "run.yaml"
"""An export's copy of the run's published settings."""
EXPORT_INFO_FILE = "export.json"
"""An export's description: which checkpoint (after how many steps) and in which format the weights are."""
TRAINABLE_FILE = "trainable.safetensors"
"""An export of a first-order run (``paczero/``): its trained tensors as the run's checkpoint holds them, from which
``verify`` regenerates the rest of the export (there is no transcript to rebuild them from)."""
