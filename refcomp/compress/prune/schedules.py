"""When to prune and how much: sparsity as a function of the training step.

A schedule answers two questions the trainer asks at step t (an int >= 0):

- ``schedule.sparsity(t)``: the target sparsity in force at step t;
- ``schedule.is_pruning_step(t)``: whether the mask is recomputed at step t.

Between pruning steps the mask (and so the sparsity) stays what it was.
Equation numbers (D.n) refer to docs/deep_compression.md.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from ...checks import integer, ratio
from ...errors import ValidationError

__all__ = ["Schedule", "OneShot", "Iterative", "Cubic"]


def _step(t) -> int:
    return integer(t, "step", minimum=0)


class Schedule(abc.ABC):
    """Target sparsity per training step."""

    @abc.abstractmethod
    def sparsity(self, step: int) -> float:
        """Sparsity in force at ``step`` (0 before the first pruning step)."""

    @abc.abstractmethod
    def pruning_steps(self) -> list[int]:
        """Every step at which the mask is recomputed, in increasing order."""

    def is_pruning_step(self, step: int) -> bool:
        return _step(step) in self.pruning_steps()


class OneShot(Schedule):
    """Prune once to ``target`` at ``step`` (default 0), then fine-tune (or not)."""

    def __init__(self, target: float, step: int = 0):
        self.target = ratio(target, "target")
        self.step = integer(step, "step", minimum=0)

    def sparsity(self, step: int) -> float:
        return self.target if _step(step) >= self.step else 0.0

    def pruning_steps(self) -> list[int]:
        return [self.step]

    def __repr__(self) -> str:
        return f"OneShot(target={self.target}, step={self.step})"


class Iterative(Schedule):
    """Prune → fine-tune rounds: ``milestones`` = [(step, sparsity), ...].

    Han et al. 2015 (arXiv:1506.02626) §3, iterative pruning: each round raises the sparsity
    and retrains. Steps must strictly increase and sparsities must not decrease
    (a weight once removed stays removed), each in [0, 1).
    """

    def __init__(self, milestones: Sequence[tuple[int, float]]):
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence) or not milestones:
            raise ValidationError("milestones", "a non-empty list of (step, sparsity) pairs", repr(milestones))
        pairs = []
        for i, item in enumerate(milestones):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValidationError(f"milestones[{i}]", "a (step, sparsity) pair", repr(item))
            pairs.append((integer(item[0], f"milestones[{i}][0]", minimum=0),
                          ratio(item[1], f"milestones[{i}][1]")))
        for i in range(1, len(pairs)):
            if pairs[i][0] <= pairs[i - 1][0]:
                raise ValidationError(f"milestones[{i}][0]", f"a step > {pairs[i - 1][0]} (strictly increasing)",
                                      pairs[i][0])
            if pairs[i][1] < pairs[i - 1][1]:
                raise ValidationError(f"milestones[{i}][1]", f"a sparsity >= {pairs[i - 1][1]} (non-decreasing)",
                                      pairs[i][1])
        self.milestones = pairs

    def sparsity(self, step: int) -> float:
        t = _step(step)
        current = 0.0
        for s, value in self.milestones:
            if s <= t:
                current = value
        return current

    def pruning_steps(self) -> list[int]:
        return [s for s, _ in self.milestones]

    def __repr__(self) -> str:
        return f"Iterative({self.milestones})"


class Cubic(Schedule):
    """Gradual pruning of Zhu & Gupta 2017 (arXiv:1710.01878) §3, eq. (1)  (D.12):

        s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (n·Δt))³,   t ∈ {t0, t0 + Δt, …, t0 + n·Δt}

    s_i initial sparsity (at t0), s_f final sparsity, t0 first pruning step,
    n number of pruning steps after t0, Δt steps between them. Pruning is
    fast at first, when redundant weights abound, and slows towards s_f.
    Before t0 the sparsity is 0; between pruning steps it holds; after
    t0 + n·Δt it stays s_f.
    """

    def __init__(self, final_sparsity: float, *, initial_sparsity: float = 0.0, begin_step: int = 0,
                 num_steps: int, frequency: int = 1):
        self.final_sparsity = ratio(final_sparsity, "final_sparsity")
        self.initial_sparsity = ratio(initial_sparsity, "initial_sparsity")
        if self.initial_sparsity > self.final_sparsity:
            raise ValidationError("initial_sparsity", f"<= final_sparsity (= {self.final_sparsity})",
                                  self.initial_sparsity)
        self.begin_step = integer(begin_step, "begin_step", minimum=0)
        self.num_steps = integer(num_steps, "num_steps", minimum=1)
        self.frequency = integer(frequency, "frequency", minimum=1)

    @property
    def end_step(self) -> int:
        return self.begin_step + self.num_steps * self.frequency

    def sparsity(self, step: int) -> float:
        t = _step(step)
        if t < self.begin_step:
            return 0.0
        # the last pruning step at or before t (the mask holds in between)
        k = min((t - self.begin_step) // self.frequency, self.num_steps)
        fraction = 1.0 - k / self.num_steps
        s_i, s_f = self.initial_sparsity, self.final_sparsity
        return s_f + (s_i - s_f) * fraction ** 3

    def pruning_steps(self) -> list[int]:
        return [self.begin_step + k * self.frequency for k in range(self.num_steps + 1)]

    def is_pruning_step(self, step: int) -> bool:
        t = _step(step)
        return (self.begin_step <= t <= self.end_step
                and (t - self.begin_step) % self.frequency == 0)

    def __repr__(self) -> str:
        return (f"Cubic(final_sparsity={self.final_sparsity}, initial_sparsity={self.initial_sparsity}, "
                f"begin_step={self.begin_step}, num_steps={self.num_steps}, frequency={self.frequency})")
