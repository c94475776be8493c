"""Profiles: one record per section, the named profiles, and the id that guards reuse."""

from __future__ import annotations

import dataclasses

import pytest

from gnc.study import PROFILES, get_profile, profile_id
from gnc.study.paper import OPTIMAL_LINES


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_heads_train_the_shape_of_the_training_section(name: str) -> None:
    """The heads section compares heads at the training section's K and d (as the paper does)."""
    p = PROFILES[name]
    for field in ("num_classes", "feature_dim", "augmentations", "fallback_classes"):
        assert getattr(p.heads, field) == getattr(p.training, field), field
    assert p.heads.reference_code == p.training.reference_code


def test_named_profiles_keep_their_sizes() -> None:
    quick, paper, tiny = PROFILES["quick"], PROFILES["paper"], PROFILES["tiny"]
    assert quick.name == "quick" and quick.device == "cpu"
    assert quick.training.dataset == "ocr_features" and quick.training.epochs == 120
    assert quick.heads.dataset == "cjk" and quick.heads.epochs == 15
    assert "icosahedron" in quick.codes.known_configs
    assert paper.codes.paper_lines == tuple(OPTIMAL_LINES)
    assert paper.training.model == paper.heads.model == "resnet18"
    assert tiny.lm.heads == () and tiny.pretrained.head_sources == ()


def test_profile_id_changes_with_any_nested_setting() -> None:
    tiny = PROFILES["tiny"]
    assert profile_id(tiny) == profile_id(dataclasses.replace(tiny))
    longer = dataclasses.replace(tiny, ufm=dataclasses.replace(tiny.ufm, steps=tiny.ufm.steps + 1))
    assert profile_id(longer) != profile_id(tiny)
    assert profile_id(longer).startswith("tiny-")


def test_get_profile() -> None:
    assert get_profile("quick") is PROFILES["quick"]
    assert get_profile(PROFILES["tiny"]) is PROFILES["tiny"]
    with pytest.raises(ValueError, match="Expected `profile` in"):
        get_profile("huge")
