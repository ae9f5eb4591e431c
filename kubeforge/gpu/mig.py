"""Which MIG layouts a card can take, judged from the profiles it offers (`nvidia-smi mig -lgip`).

A layout is the MIG devices wanted on each GPU, e.g. {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}. It
fits when every profile is one the card offers, no profile asks for more instances than the card
has of it, and the devices together stay within the card's compute slices (the N of the biggest
"Ng" profile: 7 on an H100) and memory slices (the biggest profile's memory in units of the
smallest profile's memory: 8 on an H100). This is the slice budget NVIDIA documents; where exactly
instances are placed (`nvidia-smi mig -lgipp`) can rule out a few budget-fitting mixes more, which
mig-parted reports when it applies the layout on the node.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .parsers import MigProfile

STRATEGIES = ("none", "single", "mixed")


class MigLayoutError(ValueError):
    """A MIG layout the card cannot take; .problems lists every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Card:
    profiles: tuple[MigProfile, ...]
    compute_slices: int
    memory_slices: int

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def profile(self, name: str) -> MigProfile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def memory_slices_of(self, p: MigProfile) -> int:
        unit = min(q.memory_gib for q in self.profiles)
        return max(1, round(p.memory_gib / unit))


def card_from_profiles(profiles: Sequence[MigProfile], gpu: int | None = None) -> Card:
    """The card of one GPU (the first one listed unless `gpu` says which)."""
    if not profiles:
        raise MigLayoutError(["the card offers no MIG profiles (not MIG-capable)"])
    gpu = profiles[0].gpu if gpu is None else gpu
    own = tuple(p for p in profiles if p.gpu == gpu)
    if not own:
        raise MigLayoutError([f"no MIG profiles listed for GPU {gpu}"])
    unit = min(p.memory_gib for p in own)
    biggest = max(own, key=lambda p: (p.compute_slices, p.memory_gib))
    return Card(profiles=own, compute_slices=biggest.compute_slices,
                memory_slices=max(1, round(biggest.memory_gib / unit)))


def layout_problems(card: Card | None, layout: Mapping[str, int], strategy: str) -> list[str]:
    """Every reason `layout` does not fit `card` under MIG `strategy`; [] when it fits.

    Without a card only what holds for every card is checked (counts, strategy single's one profile).
    """
    problems: list[str] = []
    if strategy not in STRATEGIES:
        return [f"MIG strategy {strategy!r} is not one of {', '.join(STRATEGIES)}"]
    if strategy == "none":
        return ["a MIG layout was given but the MIG strategy is none"] if layout else []
    if not layout:
        return [f"MIG strategy {strategy} needs a layout (which MIG devices each GPU gets)"]
    compute = memory = 0
    for name, count in layout.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            problems.append(f"profile {name}: count {count!r} must be a whole number >= 1")
            continue
        if card is None:
            continue
        p = card.profile(name)
        if p is None:
            problems.append(f"profile {name} is not offered by this card (it offers {', '.join(card.names)})")
            continue
        if count > p.instances_total:
            problems.append(f"profile {name}: {count} instances asked, the card has at most "
                            f"{p.instances_total}")
        compute += count * p.compute_slices
        memory += count * card.memory_slices_of(p)
    if card is not None and compute > card.compute_slices:
        problems.append(f"the layout takes {compute} compute slices, the card has {card.compute_slices}")
    if card is not None and memory > card.memory_slices:
        problems.append(f"the layout takes {memory} memory slices, the card has {card.memory_slices}")
    if strategy == "single" and len(layout) > 1:
        problems.append(f"MIG strategy single needs one profile on every GPU, the layout mixes "
                        f"{', '.join(sorted(layout))} (use strategy mixed)")
    return problems


def check_layout(card: Card, layout: Mapping[str, int], strategy: str) -> None:
    problems = layout_problems(card, layout, strategy)
    if problems:
        raise MigLayoutError(problems)


def resource_names(layout: Mapping[str, int], strategy: str) -> list[str]:
    """Extended resources the device plugin advertises for the layout under `strategy`."""
    if strategy == "mixed":
        # The device plugin turns a profile's "+" into "." (1g.10gb+me -> nvidia.com/mig-1g.10gb.me).
        return [f"nvidia.com/mig-{name.replace('+', '.')}" for name in sorted(layout)]
    return ["nvidia.com/gpu"]
