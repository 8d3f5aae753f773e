"""The secret: which candidate subset is used (J*), and the key of the private noise stream.

Both come from the operating system's cryptographic source (:mod:`secrets`), never from the public
seed. The noise is a keyed pseudo-random function of (step, direction): HMAC-SHA256 under a 256-bit
key, so it is unpredictable without the key and yet reproducible on resume. The state lives only in
``secret.json`` (mode 0600). Its ``repr`` hides its contents so it cannot leak into logs or tracebacks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtri

from paczero.errors import PaczeroError
from paczero.fileio import write_text

SECRET_FILE = "secret.json"


@dataclass(frozen=True, repr=False)
class SecretState:
    """J*, the index of the secret subset, and the 256-bit key of the private noise stream."""
    key: bytes
    j_star: int

    def __repr__(self) -> str:
        return "SecretState(<hidden>)"

    @classmethod
    def fresh(cls, n_subsets: int) -> "SecretState":
        """Draw a 256-bit key and J* ~ Uniform{0..M−1} from the OS entropy source."""
        return cls(key=secrets.token_bytes(32), j_star=secrets.randbelow(n_subsets))

    def gaussian(self, *, step: int, k: int) -> float:
        """A standard normal draw for direction ``k`` of step ``step``, from the keyed stream."""
        msg = b"paczero-noise" + step.to_bytes(8, "big") + k.to_bytes(4, "big")
        word = int.from_bytes(hmac.new(self.key, msg, hashlib.sha256).digest()[:8], "big") >> 11  # 53 bits
        return float(ndtri((word + 0.5) / 2.0**53))

    def generator(self, purpose: str, *index: int) -> np.random.Generator:
        """A numpy generator keyed by the secret (e.g. the DP baselines' Poisson sampling of ``step``).

        Seeded with HMAC-SHA256(key, purpose, index): unpredictable without the key, reproducible on resume.
        """
        msg = b"paczero-" + purpose.encode() + b"".join(i.to_bytes(8, "big") for i in index)
        digest = hmac.new(self.key, msg, hashlib.sha256).digest()
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "big"))))

    def save(self, path: Path) -> None:
        """Write the state to ``path`` with mode 0600."""
        write_text(path, json.dumps({"key": self.key.hex(), "j_star": self.j_star}), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> "SecretState":
        """Read a state written by :meth:`save`."""
        if not path.is_file():
            raise PaczeroError(f"secret state {path} not found (was it deleted with --forget-secret?)")
        d = json.loads(path.read_text())
        return cls(key=bytes.fromhex(d["key"]), j_star=int(d["j_star"]))
