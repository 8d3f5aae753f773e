"""Public randomness, derived statelessly from the run's public seed.

Everything an adversary is allowed to know (data split, membership matrix, direction seeds, the
ZPL coins) is a pure function of ``(seed, purpose, indices)``. Stateless derivation means a resumed
or replayed run regenerates exactly the same numbers without saving generator states, and that no
draw can be shifted by another. Secret randomness lives in :mod:`paczero.secret`, never here.
"""

from __future__ import annotations

import zlib

import numpy as np


def _tag(purpose: str) -> int:
    return zlib.crc32(purpose.encode("utf-8"))


def public_generator(seed: int, purpose: str, *indices: int) -> np.random.Generator:
    """A numpy generator for one public purpose (e.g. ``"split"``, ``"membership"``, ``"coin"``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _tag(purpose), *indices])))


def direction_seed(seed: int, step: int, k: int) -> int:
    """The public seed of direction ``k`` at step ``step`` (a 63-bit integer, stored in the ledger)."""
    state = np.random.SeedSequence([seed, _tag("direction"), step, k]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def tensor_seed(direction: int, tensor_index: int, piece: int = 0) -> int:
    """Seed of piece ``piece`` of the Gaussian block of one trainable tensor within a direction.

    A block is generated in pieces of fixed size, each from its own seed, so that pieces can be generated
    in parallel; piece 0 keeps the seed of a block generated whole.
    """
    entropy = [direction & 0xFFFFFFFF, direction >> 32, tensor_index] + ([piece] if piece else [])
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def public_coin(seed: int, step: int, k: int) -> int:
    """A fair ±1 coin from the public seed for direction ``k`` of ``step`` (independent of the data and the secret)."""
    return 1 if public_generator(seed, "zpl-coin", step, k).random() < 0.5 else -1
