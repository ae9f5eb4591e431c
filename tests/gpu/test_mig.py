"""MIG layouts judged against the profiles the real H100 offers (nvidia-smi mig -lgip)."""
from __future__ import annotations

import pytest

from kubeforge.gpu.mig import (
    MigLayoutError,
    card_from_profiles,
    check_layout,
    layout_problems,
    resource_names,
)
from kubeforge.gpu.parsers import parse_mig_lgip


@pytest.fixture(scope="module")
def card(h100):
    return card_from_profiles(parse_mig_lgip((h100 / "nvidia-smi-mig-lgip.txt").read_text()))


def test_card_budget_from_real_profiles(card):
    assert (card.compute_slices, card.memory_slices) == (7, 8)
    assert {p.name: card.memory_slices_of(p) for p in card.profiles} == {
        "1g.10gb": 1, "1g.10gb+me": 1, "1g.20gb": 2, "2g.20gb": 2, "3g.40gb": 4, "4g.40gb": 4, "7g.80gb": 8}


@pytest.mark.parametrize("layout,strategy", [
    ({"1g.10gb": 7}, "single"),
    ({"2g.20gb": 3}, "single"),
    ({"3g.40gb": 2}, "single"),
    ({"7g.80gb": 1}, "single"),
    ({"1g.20gb": 4}, "single"),
    ({"4g.40gb": 1, "3g.40gb": 1}, "mixed"),
    ({"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}, "mixed"),   # mig-parted's all-balanced on H100
    ({"1g.10gb+me": 1, "1g.10gb": 6}, "mixed"),
])
def test_layouts_the_card_can_take(card, layout, strategy):
    assert layout_problems(card, layout, strategy) == []
    check_layout(card, layout, strategy)


@pytest.mark.parametrize("layout,strategy,message", [
    ({"1g.10gb": 8}, "single", "1g.10gb: 8 instances asked, the card has at most 7"),
    ({"1g.5gb": 7}, "single", "profile 1g.5gb is not offered by this card (it offers 1g.10gb, 1g.10gb+me, "
                              "1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb)"),
    ({"4g.40gb": 2}, "single", "at most 1"),
    ({"7g.80gb": 1, "1g.10gb": 1}, "mixed", "the layout takes 8 compute slices, the card has 7"),
    ({"3g.40gb": 2, "1g.10gb": 1}, "mixed", "the layout takes 9 memory slices, the card has 8"),
    ({"3g.40gb": 1, "1g.10gb": 1}, "single", "MIG strategy single needs one profile on every GPU"),
    ({"1g.10gb": 0}, "mixed", "count 0 must be a whole number >= 1"),
    ({"1g.10gb": 7}, "none", "the MIG strategy is none"),
    ({}, "mixed", "needs a layout"),
    ({"1g.10gb": 1}, "dynamic", "is not one of none, single, mixed"),
])
def test_layouts_the_card_cannot_take(card, layout, strategy, message):
    with pytest.raises(MigLayoutError) as e:
        check_layout(card, layout, strategy)
    assert any(message in p for p in e.value.problems), e.value.problems


def test_no_profiles_means_not_mig_capable():
    with pytest.raises(MigLayoutError, match="not MIG-capable"):
        card_from_profiles([])


def test_resource_names():
    assert resource_names({"3g.40gb": 1, "1g.10gb+me": 1}, "mixed") == [
        "nvidia.com/mig-1g.10gb.me", "nvidia.com/mig-3g.40gb"]
    assert resource_names({"1g.10gb": 7}, "single") == ["nvidia.com/gpu"]
