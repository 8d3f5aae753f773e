"""The formats of a run's two logs: the public transcript and the private release log.

**Transcript** (public, ``transcript.jsonl``): one JSON line per step, exactly what the mechanism released —

    {"directions": [{"seed": <direction seed>, "value": <released value>}, ...], "lr": <η_t>, "step": <t>}

The weights are a deterministic function of the base model and these lines (:mod:`paczero.replay`), and nothing
else a run publishes depends on the secret. **Release log** (private, ``private/releases.jsonl``): one line per
step with each release's private record (:meth:`~paczero.releases.Release.private_record`: its kind, the subset
signs, q₊, the budget, the flip probability, the MI charged, the batch size...), the owner's view of how each
value came about.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from paczero.fileio import jsonl_line
from paczero.releases import NoisyBit, Release, from_record


@dataclass(frozen=True)
class Direction:
    """One released direction: its public seed and the released value (the multiplier of z in the update)."""

    seed: int
    value: float


@dataclass(frozen=True)
class TranscriptStep:
    """One line of the public transcript."""

    step: int
    lr: float
    directions: tuple[Direction, ...]

    def to_dict(self) -> dict[str, Any]:
        """The line as a JSON-ready dict."""
        return {"step": self.step, "lr": self.lr,
                "directions": [{"seed": d.seed, "value": d.value} for d in self.directions]}

    def line(self) -> bytes:
        """The line's bytes (compact, key-sorted JSON, no newline): equal steps give equal bytes."""
        return jsonl_line(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TranscriptStep":
        """Parse one transcript line, refusing anything the trainer cannot have written."""
        if not isinstance(d, Mapping) or set(d) != {"step", "lr", "directions"}:
            raise ValueError(f"a transcript line holds exactly step, lr and directions; got {sorted(d)!r}"
                             if isinstance(d, Mapping) else f"a transcript line is a JSON object, got {d!r}")
        step, lr, directions = d["step"], d["lr"], d["directions"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step {step!r} is not a step number")
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr):
            raise ValueError(f"step {step}: lr {lr!r} is not a finite number")
        if not isinstance(directions, list) or not directions:
            raise ValueError(f"step {step}: directions must be a non-empty list")
        parsed = []
        for x in directions:
            if not isinstance(x, Mapping) or set(x) != {"seed", "value"}:
                raise ValueError(f"step {step}: a direction holds exactly seed and value; got {x!r}")
            seed, value = x["seed"], x["value"]
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise ValueError(f"step {step}: seed {seed!r} is not a direction seed")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"step {step}: value {value!r} is not a finite number")
            parsed.append(Direction(seed=seed, value=float(value)))
        return cls(step=step, lr=float(lr), directions=tuple(parsed))


def transcript_step(*, step: int, lr: float, seeds: Sequence[int], releases: Sequence[Release]) -> TranscriptStep:
    """The transcript line of one step from its direction seeds and releases (only the values are kept)."""
    return TranscriptStep(step=step, lr=lr, directions=tuple(Direction(seed=s, value=r.value)
                                                             for s, r in zip(seeds, releases, strict=True)))


def parse_transcript(records: Iterable[Mapping[str, Any]]) -> list[TranscriptStep]:
    """The steps of a transcript, checked to be contiguous from step 0 (a ``ValueError`` names the first fault)."""
    steps = []
    for i, record in enumerate(records):
        step = TranscriptStep.from_dict(record)
        if step.step != i:
            raise ValueError(f"line {i + 1} holds step {step.step}; expected step {i} (the transcript must be "
                             "contiguous from step 0)")
        steps.append(step)
    return steps


def release_record(*, step: int, releases: Sequence[Release]) -> dict[str, Any]:
    """The private release-log line of one step."""
    return {"step": step, "releases": [r.private_record() for r in releases]}


def parse_releases(records: Iterable[Mapping[str, Any]]) -> list[list[Release]]:
    """The typed releases of every step of a private release log."""
    return [[from_record(r) for r in record["releases"]] for record in records]


def private_summary(steps: Iterable[Sequence[Release]]) -> dict[str, Any]:
    """The owner's figures of a run, from its private release log (computed on the pool: never published).

    Counts of each release kind, the unanimity (free-release) rate and the achieved MI (the sum of what each noisy
    release was charged, ≤ the budget). Nothing here depends on J*: whether a noisy bit carried the secret subset's
    true sign is recorded nowhere (it serves no user and, beside the pool, narrows down J*).
    """
    releases = [r for step in steps for r in step]
    kinds = Counter(r.kind for r in releases)
    noisy = [r for r in releases if isinstance(r, NoisyBit)]
    return {"release_kinds": dict(sorted(kinds.items())), "releases": len(releases),
            "unanimity_rate": sum(r.agreed for r in releases) / len(releases) if releases else math.nan,
            "achieved_mi_nats": sum(r.mi for r in noisy), "noisy_releases": len(noisy)}
