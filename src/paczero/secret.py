"""The secret: which candidate subset is used (J*), and the key of the private randomness.

Both come from the operating system's cryptographic source (:mod:`secrets`), never from the public seed. All
secret randomness — PACZero-MI's bit flips, the DP baselines' Poisson batches and discrete Gaussian noise — is
drawn from keyed streams: HMAC-SHA256 under the 256-bit key, in counter mode, labelled by purpose and indices
(e.g. ``("mi-flip", step, k)``). A stream is unpredictable without the key, independent of every other stream,
and the same on resume, so a recomputed step releases exactly what it released before. Only uniform integers
come out of a stream (by rejection from whole bytes): there is no floating-point noise to leak its last bits.

The state is written only to the run's private folder (mode 0600). Its ``repr`` hides its contents so it cannot
leak into logs or tracebacks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from paczero.errors import PaczeroError
from paczero.fileio import write_text


class KeyedStream:
    """Uniform integers from HMAC-SHA256(key, label ‖ counter), counter = 0, 1, 2, …"""

    def __init__(self, key: bytes, label: bytes):
        self._mac = hmac.new(key, label, hashlib.sha256)
        self._counter = 0
        self._buffer = b""

    def _bytes(self, n: int) -> bytes:
        while len(self._buffer) < n:
            mac = self._mac.copy()
            mac.update(self._counter.to_bytes(8, "big"))
            self._buffer += mac.digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def randbelow(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection from ⌈log₂ n⌉ random bits."""
        if n < 1:
            raise ValueError(f"n={n} is invalid; expected >= 1")
        if n == 1:
            return 0
        bits = (n - 1).bit_length()
        nbytes = (bits + 7) // 8
        excess = 8 * nbytes - bits
        while True:
            x = int.from_bytes(self._bytes(nbytes), "big") >> excess
            if x < n:
                return x

    def word64(self) -> int:
        """A uniform integer in [0, 2⁶⁴)."""
        return int.from_bytes(self._bytes(8), "big")


@dataclass(frozen=True, repr=False)
class SecretState:
    """J*, the index of the secret subset, and the 256-bit key of the private randomness."""
    key: bytes
    j_star: int

    def __repr__(self) -> str:
        return "SecretState(<hidden>)"

    @classmethod
    def fresh(cls, n_subsets: int) -> "SecretState":
        """Draw a 256-bit key and J* ~ Uniform{0..M−1} from the OS entropy source."""
        return cls(key=secrets.token_bytes(32), j_star=secrets.randbelow(n_subsets))

    def stream(self, purpose: str, *index: int) -> KeyedStream:
        """The keyed stream of one purpose and index (e.g. ``stream("dp-noise", step, k)``)."""
        label = b"paczero-" + purpose.encode() + b"\x00" + b"".join(i.to_bytes(8, "big", signed=True) for i in index)
        return KeyedStream(self.key, label)

    def save(self, path: Path) -> None:
        """Write the state to ``path`` with mode 0600."""
        write_text(path, json.dumps({"key": self.key.hex(), "j_star": self.j_star}), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> "SecretState":
        """Read a state written by :meth:`save`."""
        if not path.is_file():
            raise PaczeroError(f"secret state {path} not found (was it deleted with --forget-secret?)")
        try:
            d = json.loads(path.read_text())
            return cls(key=bytes.fromhex(d["key"]), j_star=int(d["j_star"]))
        except (ValueError, KeyError, TypeError):
            raise PaczeroError(f"secret state {path} is unreadable (not written by paczero?)") from None
