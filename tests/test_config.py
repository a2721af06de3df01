"""SegmentConfig checks and coerces every field in one place; errors name the field and what it accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepcut import DeepCut, SegmentConfig
from deepcut.config import MAX_EPOCHS
from deepcut.errors import ConfigError, DeepCutError


@pytest.mark.parametrize("field,value,expected", [
    ("k", "3", 3), ("k", 3.0, 3), ("k", np.int64(4), 4), ("alpha", "3", 3.0), ("alpha", 2, 2.0),
    ("layer", "11", 11), ("layer", -1, -1), ("resolution", 200.0, 200), ("seed", np.int32(7), 7),
    ("stages", np.int64(2), 2), ("largest_component", np.bool_(True), True), ("epochs", [5], (5, 100, 10)),
    ("epochs", ("5", 6, 7.0), (5, 6, 7)), ("stride", "4", 4),
])
def test_lossless_variants_are_coerced_to_the_fields_type(field, value, expected):
    value_out = getattr(SegmentConfig(**{field: value}), field)
    assert value_out == expected and type(value_out) is type(expected)


@pytest.mark.parametrize("field,value,words", [
    ("k", 2.5, "k must be a whole number from 2"), ("k", 1, "from 2 to"), ("k", "three", "k must be"),
    ("k", True, "k must be"), ("layer", None, "layer must be a whole number"), ("layer", 1.5, "layer must"),
    ("resolution", "auto", "resolution must"), ("resolution", math.nan, "resolution must"),
    ("resolution", 10**6, "resolution must"), ("seed", None, "seed must"), ("seed", 2**64, "seed must"),
    ("seed", -1, "seed must"), ("epochs", None, "epochs must"), ("epochs", 10**7, "epochs must"),
    ("epochs", (1, 2), "epochs must"), ("epochs", 0, "epochs must"), ("alpha", math.nan, "alpha must be a finite"),
    ("alpha", 0, "> 0"), ("alpha", "x", "alpha must"), ("stages", True, "stages must be one of (1, 2, 3)"),
    ("stages", 4, "stages must"), ("largest_component", "yes", "largest_component must be True or False"),
    ("log_bin", 1, "log_bin must"), ("loss", "ncutt", "loss must be one of"), ("facet", None, "facet must"),
    ("refine", "bilateral", "refine must"), ("bg_k", 0, "bg_k must"), ("stride", 0, "stride must"),
])
def test_bad_values_are_config_errors_naming_the_field(field, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SegmentConfig(**{field: value})


def test_every_bad_value_is_a_deepcut_error_through_the_facade():
    """The library's entry points refuse them with DeepCutError before any work (no TypeError,
    ValueError or endless loop)."""
    dc = DeepCut("color")
    img = np.zeros((32, 32, 3), np.uint8)
    for kw in (dict(k=None, stages=None), dict(layer=None), dict(resolution="auto"), dict(seed=None),
               dict(epochs=None), dict(alpha="3x"), dict(resolution=math.nan), dict(seed=2**64),
               dict(epochs=MAX_EPOCHS + 1), dict(k=2.5), dict(stages=True), dict(largest_component="yes")):
        with pytest.raises(DeepCutError):
            dc.segment(img, **kw)
