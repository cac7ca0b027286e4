"""Tests of cnn_lib.gradcheck itself: the relative error, the numerical gradient, and that
the checks catch a wrong backward (a checker that always passes would be worthless)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import cnn_lib
from cnn_lib import functional as F
from cnn_lib.gradcheck import check_function, check_layer, check_model, numerical_gradient, rel_error
from cnn_lib.layers import Dense, ReLU
from cnn_lib.losses import softmax_cross_entropy
from cnn_lib.model import Sequential

STEP = 1e-5   # see tests/test_functional.py


# --------------------------------------------------------------------------- rel_error
def test_rel_error_values():
    a = np.random.default_rng(0).standard_normal((4, 5))
    assert rel_error(a, a) == 0.0
    assert rel_error(a, a.copy()) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0            # no 0/0
    assert rel_error([1.0], [3.0]) == 0.5                        # |1 - 3| / (1 + 3)
    assert rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 4.2, rel=1e-12)   # the maximum entry
    assert rel_error([2.0], [-2.0]) == 1.0
    assert rel_error(a, 2 * a) == pytest.approx(1 / 3, rel=1e-12)
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    assert rel_error(a, a[::-1]) == rel_error(a[::-1], a)        # symmetric


def test_rel_error_of_unrelated_arrays_is_near_one():
    rng = np.random.default_rng(1)
    assert rel_error(rng.standard_normal(1000), rng.standard_normal(1000)) > 0.9


def test_rel_error_rejects_different_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(3), np.zeros(4))


# --------------------------------------------------------------------------- numerical_gradient
def test_numerical_gradient_of_a_known_function():
    x = np.random.default_rng(2).standard_normal((3, 4))
    x_copy = x.copy()
    grad = numerical_gradient(lambda: np.sum(x ** 3) + np.sum(np.sin(x)), x, h=STEP)
    assert grad.dtype == np.float64 and grad.shape == x.shape
    assert_allclose(grad, 3 * x ** 2 + np.cos(x), rtol=1e-8, atol=1e-9)
    assert_array_equal(x, x_copy)                                # restored exactly


def test_numerical_gradient_on_some_indices():
    x = np.arange(6.0).reshape(2, 3)
    c = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    grad = numerical_gradient(lambda: np.sum(c * x), x, indices=[1, 4])
    expected = np.zeros((2, 3))
    expected[0, 1], expected[1, 1] = -2.0, 4.0
    assert_allclose(grad, expected, atol=1e-8)


def test_numerical_gradient_needs_an_array_it_can_change():
    x = np.zeros((3, 4)).T                                       # not contiguous: a copy would be probed
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: np.sum(x), x)


# --------------------------------------------------------------------------- the checks catch mistakes
def test_check_function_passes_a_right_and_fails_a_wrong_backward():
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    right = check_function(F.sigmoid, F.sigmoid_backward, x, rng=0, h=STEP)
    assert len(right) == 1 and right[0] < 1e-7
    doubled = check_function(F.sigmoid, lambda dy, x: 2 * F.sigmoid_backward(dy, x), x, rng=0, h=STEP)
    assert doubled[0] == pytest.approx(1 / 3, rel=1e-5)          # |2g - g| / (|2g| + |g|)
    flipped = check_function(F.sigmoid, lambda dy, x: -F.sigmoid_backward(dy, x), x, rng=0, h=STEP)
    assert flipped[0] == pytest.approx(1.0, rel=1e-6)
    forgot = check_function(F.arctan, lambda dy, x: dy, x, rng=0, h=STEP)   # 1 instead of 1/(1+x^2)
    assert forgot[0] > 0.1


def test_check_function_checks_every_input():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 5)), rng.standard_normal((5, 2)), rng.standard_normal(2)

    def backward_wrong_db(dy, x, w, b):
        dx, dw, db = F.dense_backward(dy, x, w)
        return dx, dw, 2 * db

    errors = check_function(F.dense, backward_wrong_db, x, w, b, rng=0, h=STEP)
    assert len(errors) == 3
    assert errors[0] < 1e-7 and errors[1] < 1e-7
    assert errors[2] == pytest.approx(1 / 3, rel=1e-5)


class DoubledWeightGradient(Dense):
    def backward(self, dy, need_dx=True):
        dx = super().backward(dy, need_dx)
        self.grads["w"] = 2 * self.grads["w"]
        return dx


class WrongInputGradient(ReLU):
    def backward(self, dy, need_dx=True):
        return dy            # forgets to mask by x > 0


def test_check_layer_finds_the_wrong_gradient():
    x = np.random.default_rng(5).standard_normal((3, 4))
    right = check_layer(Dense(4, 3, rng=0, dtype=np.float64), x, rng=0, h=STEP)
    assert set(right) == {"x", "w", "b"} and max(right.values()) < 1e-7
    errors = check_layer(DoubledWeightGradient(4, 3, rng=0, dtype=np.float64), x, rng=0, h=STEP)
    assert errors["x"] < 1e-7 and errors["b"] < 1e-7
    assert errors["w"] == pytest.approx(1 / 3, rel=1e-5)
    errors = check_layer(WrongInputGradient(), x, rng=0, h=STEP)
    assert errors["x"] == pytest.approx(1.0)                     # a negative input: 0 vs dy


def test_check_model_finds_the_wrong_gradient():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 5))
    y = np.array([0, 2, 1, 2])

    def make(first):
        r = np.random.default_rng(0)
        return Sequential(("hidden", first(5, 6, rng=r, dtype=np.float64)), ReLU(),
                          ("out", Dense(6, 3, rng=r, dtype=np.float64)))

    right = check_model(make(Dense), x, y, rng=0, h=STEP)
    assert set(right) == {"x", "hidden.w", "hidden.b", "out.w", "out.b"}
    assert max(right.values()) < 1e-6, right
    wrong = check_model(make(DoubledWeightGradient), x, y, rng=0, h=STEP)
    assert wrong["hidden.w"] == pytest.approx(1 / 3, rel=1e-4)
    assert max(v for k, v in wrong.items() if k != "hidden.w") < 1e-6   # the mistake is located

    def doubled_loss(logits, y):
        loss, d = softmax_cross_entropy(logits, y)
        return loss, 2 * d

    errors = check_model(make(Dense), x, y, loss_and_grad=doubled_loss, rng=0, h=STEP)
    assert all(v == pytest.approx(1 / 3, rel=1e-4) for v in errors.values()), errors


def test_check_model_samples_entries():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 30))
    model = Sequential([("wide", DoubledWeightGradient(30, 40, rng=0, dtype=np.float64))])
    errors = check_model(model, x, np.array([1, 5]), samples=10, rng=0, h=STEP)
    assert errors["wide.w"] == pytest.approx(1 / 3, rel=1e-4)
    assert errors["x"] < 1e-6 and errors["wide.b"] < 1e-6


def test_public_names():
    assert cnn_lib.check_layer is check_layer
    assert cnn_lib.check_model is check_model
    assert cnn_lib.numerical_gradient is numerical_gradient
    assert cnn_lib.rel_error is rel_error
