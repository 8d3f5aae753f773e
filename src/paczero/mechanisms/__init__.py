"""Release mechanisms behind one interface (:class:`Mechanism`), listed once in :mod:`.registry`."""

from __future__ import annotations

from paczero.mechanisms.ablations import Ablation
from paczero.mechanisms.base import Mechanism
from paczero.mechanisms.dp import DPAggZO, DPZero
from paczero.mechanisms.mezo import MeZO
from paczero.mechanisms.mi import PacMI
from paczero.mechanisms.registry import MechanismSpec, build_mechanism, names, run_statement, spec
from paczero.mechanisms.zpl import ZPL

__all__ = ["Ablation", "DPAggZO", "DPZero", "Mechanism", "MeZO", "MechanismSpec", "PacMI", "ZPL",
           "build_mechanism", "names", "run_statement", "spec"]
