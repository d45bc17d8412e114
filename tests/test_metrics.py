"""The paper's error metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsolve import metrics


def test_hand_computed_case():
    ideal = np.array([[0.0, 10.0], [2.0, 20.0], [4.0, 30.0]])  # ranges 4 and 20
    actual = np.array([[0.1, 10.0], [2.0, 19.0], [3.8, 30.5]])
    e = metrics.output_error(actual, ideal)
    np.testing.assert_allclose(e, [[0.025, 0.0], [0.0, -0.05], [-0.05, 0.025]])
    s = metrics.summary(actual, ideal)
    np.testing.assert_allclose(s.column_mean, [0.075 / 3, 0.075 / 3])
    np.testing.assert_allclose(s.column_worst, [0.05, 0.05])
    assert s.mean_relative_error == pytest.approx(0.025)
    assert s.worst_relative_error == pytest.approx(0.05)
    assert s.mean_bits == pytest.approx(np.log2(41.0))
    assert s.worst_bits == pytest.approx(np.log2(21.0))


def test_paper_headline_bits():
    assert float(metrics.bit_accuracy(0.0025)) == pytest.approx(8.65, abs=0.01)
    assert float(metrics.bit_accuracy(0.012)) == pytest.approx(6.4, abs=0.02)
    assert np.isinf(metrics.bit_accuracy(0.0))


def test_given_range_and_errors():
    ideal = np.array([[1.0], [1.0]])
    with pytest.raises(ValueError, match="no range"):
        metrics.output_error(ideal + 1, ideal)
    np.testing.assert_allclose(metrics.relative_error(ideal + 1, ideal, [4.0]), 0.25)
    with pytest.raises(ValueError, match="same shape"):
        metrics.output_error(np.ones((2, 2)), np.ones((2, 3)))


def test_layer_bits_use_the_one_bit_accuracy():
    """The CNN report's bit accuracy is metrics.bit_accuracy (inf at 0, NaN when the layer
    alone was not evaluated)."""
    from xbarsolve.cnn import LayerError

    for mean in (0.0025, 0.012, 0.3):
        assert LayerError("x", mean, 1.0, mean, 1.0).bits_alone == float(metrics.bit_accuracy(mean))
    assert np.isinf(LayerError("x", 0.0, 0.0, 0.0, 0.0).bits_alone)
    assert np.isnan(LayerError("x", np.nan, np.nan, 0.1, 0.2).bits_alone)
