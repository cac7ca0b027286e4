"""Bad input gets a clear error that says what was expected, never a wrong result.

Each test is a plausible mistake found by trying the public API with wrong shapes, dtypes,
lengths and arguments; before its check was added, each one either returned a wrong result
without an error (a broadcast that hid a shape mismatch, a loss over part of the labels, a
model that does not train) or raised an error from deep inside NumPy that did not say what
was expected (an ``IndexError``, a bare ``matmul`` mismatch, ``not enough values to unpack``).
"""

import numpy as np
import pytest

import cnn_lib
from cnn_lib import functional as F
from cnn_lib.init import initialize
from cnn_lib.layers import Dense, Flatten, ReLU
from cnn_lib.model import Sequential, seed_network
from cnn_lib.optim import SGD, Adam
from cnn_lib.train import evaluate, fit, minibatches

MLP_SPEC = ["flatten", ("dense", 16), "relu", ("dense", 10)]


def _batch(N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, N)


# --------------------------------------------------------------------------- functional
@pytest.mark.parametrize("backward", [F.relu_backward, F.sigmoid_backward, F.arctan_backward,
                                      F.relu_backward_naive, F.sigmoid_backward_naive,
                                      F.arctan_backward_naive])
@pytest.mark.parametrize("dy_shape", [(8, 1), (10,), (1, 10)])
def test_activation_backward_refuses_dy_that_would_broadcast(backward, dy_shape):
    # was: dy (8, 1) against x (8, 10) broadcast to an (8, 10) "gradient" without a word
    x = np.random.default_rng(0).standard_normal((8, 10))
    with pytest.raises(ValueError, match=r"dy of shape \(8, 10\)"):
        backward(np.ones(dy_shape), x)


@pytest.mark.parametrize("dense", [F.dense, F.dense_naive])
def test_dense_refuses_a_bias_of_the_wrong_shape(dense):
    # was: a bias (1,) or (N, M) broadcast silently (F.dense), or an IndexError (dense_naive)
    x, w = np.ones((8, 10)), np.ones((10, 3))
    for b in (np.ones(1), np.ones((8, 3))):
        with pytest.raises(ValueError, match=r"b of shape \(3,\)"):
            dense(x, w, b)


def test_dense_naive_refuses_mismatched_x_and_w():
    with pytest.raises(ValueError, match=r"x \(N, D_in\) and w \(D_in, D_out\)"):
        F.dense_naive(np.ones((8, 10)), np.ones((9, 3)), np.ones(3))


@pytest.mark.parametrize("backward", [F.dense_backward, F.dense_backward_naive])
@pytest.mark.parametrize("dy_shape", [(8, 1), (4, 3), (3,)])
def test_dense_backward_says_which_dy_it_expected(backward, dy_shape):
    # was: a bare "matmul: Input operand 1 has a mismatch in its core dimension 0" or an IndexError
    with pytest.raises(ValueError, match=r"dy of shape \(8, 3\)"):
        backward(np.ones(dy_shape), np.ones((8, 10)), np.ones((10, 3)))


def test_sequential_backward_with_dy_of_the_wrong_shape():
    model = seed_network(0)
    x, _ = _batch(4)
    model.forward(x)
    with pytest.raises(ValueError, match=r"dy of shape \(4, 10\)"):
        model.backward(np.ones((4, 5), np.float32))


@pytest.mark.parametrize("loss", [cnn_lib.softmax_cross_entropy, F.cross_entropy,
                                  lambda z, y: F.nll_loss(F.log_softmax(z), y)])
def test_a_loss_over_zero_examples_is_an_error_not_nan(loss):
    # was: nan (with "Mean of empty slice" warnings)
    with pytest.raises(ValueError, match="at least one example"):
        loss(np.zeros((0, 10), np.float32), np.zeros(0, np.int64))


@pytest.mark.parametrize("naive", [F.nll_loss_naive, F.cross_entropy_naive, F.cross_entropy_backward_naive])
def test_naive_losses_check_their_labels(naive):
    # was: nll_loss_naive and cross_entropy_naive averaged over the first 4 of 8 rows without
    # a word; cross_entropy_backward_naive raised an IndexError
    z, y = np.zeros((8, 10)), np.arange(8)
    with pytest.raises(ValueError, match=r"integer labels of shape \(8,\)"):
        naive(z, y[:4])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9"):
        naive(z, y + 5)


@pytest.mark.parametrize("naive", [F.softmax_naive, F.log_softmax_naive])
def test_naive_softmax_says_it_expects_two_axes(naive):
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        naive(np.zeros(10))


def test_naive_conv_and_pool_backward_check_dy():
    # was: IndexError from inside the loops
    x = np.zeros((2, 1, 6, 6))
    with pytest.raises(ValueError, match=r"dy of shape \(2, 2, 4, 4\)"):
        F.conv2d_backward_naive(np.ones((2, 2, 3, 3)), x, np.ones((2, 1, 3, 3)))
    for backward in (F.maxpool2d_backward_naive, F.avgpool2d_backward_naive):
        with pytest.raises(ValueError, match=r"dy of shape \(2, 1, 3, 3\)"):
            backward(np.ones((2, 1, 3, 1)), x)


def test_col2im_says_it_expects_a_four_axis_shape():
    with pytest.raises(ValueError, match=r"x_shape must be \(N, C, H, W\)"):
        F.col2im(np.ones((2, 9, 16)), (2, 1, 6), 3)


# --------------------------------------------------------------------------- layers and shapes
@pytest.mark.parametrize("input_shape", [(784,), (1, 28), (5, 1, 28, 28)])
def test_summary_and_from_spec_name_the_expected_input_shape(input_shape):
    # was: "not enough values to unpack (expected 3, got 1)"
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        seed_network(0).summary(input_shape)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        cnn_lib.MaxPool2D(2).output_shape(input_shape)


def test_from_spec_pooling_after_flatten():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        Sequential.from_spec(["flatten", ("maxpool", 2)])


def test_an_empty_batch_of_the_wrong_shape_into_a_conv_net():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        seed_network(0).forward(np.zeros((0, 784), np.float32))


def test_flatten_backward_refuses_a_dy_of_the_right_size_but_wrong_shape():
    # was: dy (10, 8) for a flattened (8, 10) was reshaped without a word
    layer = Flatten()
    layer.forward(np.zeros((8, 2, 5)))
    with pytest.raises(ValueError, match=r"dy of shape \(8, 10\)"):
        layer.backward(np.ones((10, 8)))


# --------------------------------------------------------------------------- Sequential
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, bool])
def test_integer_images_are_refused(dtype):
    # was: uint8 pixels 0..255 went through unnormalized: a loss of ~300 and no error
    x, y = _batch(64)
    x = (np.abs(x) * 50).astype(dtype)
    model = seed_network(0)
    for call in (lambda: model.forward(x[:4]), lambda: model.forward(x, train=False),
                 lambda: model.train_step(x[:4], y[:4]), lambda: model.train_step(x, y),
                 lambda: model.predict(x), lambda: evaluate(model, x, y),
                 lambda: fit(model, x, y, progress=False)):
        with pytest.raises(TypeError, match="floating-point"):
            call()


def test_train_step_on_an_empty_batch():
    # was: RuntimeError "Dense.backward called before forward", after a nan loss warning
    x, y = _batch(4)
    with pytest.raises(ValueError, match="at least one example"):
        seed_network(0).train_step(x[:0], y[:0])


def test_lists_are_taken_as_arrays():
    # was: AttributeError "'list' object has no attribute 'ndim'" (forward) or TypeError
    # "only integer scalar arrays can be converted to a scalar index" (fit, train_val_split)
    x, y = _batch(40)
    model = Sequential.from_spec(MLP_SPEC, seed=0)
    assert np.array_equal(model.predict(x.tolist()), model.predict(x))
    assert evaluate(model, x.tolist(), y.tolist()) == pytest.approx(evaluate(model, x, y))   # float64 from the list
    fit(model, x.tolist(), y.tolist(), epochs=1, batch_size=8, progress=False)
    parts = cnn_lib.train_val_split(x.tolist(), y.tolist(), val_size=10)
    assert [len(p) for p in parts] == [30, 30, 10, 10]


# --------------------------------------------------------------------------- fit and minibatches
def test_fit_refuses_an_optimizer_over_another_models_parameters():
    # was: the optimizer stepped the *other* model's arrays (same names, same shapes) with this
    # model's gradients; the model given to fit never changed
    x, y = _batch(40)
    model, other = Sequential.from_spec(MLP_SPEC, seed=0), Sequential.from_spec(MLP_SPEC, seed=0)
    with pytest.raises(ValueError, match="not the model's parameters"):
        fit(model, x, y, optimizer=Adam(other.params()), progress=False)


def test_fit_checks_the_shape_of_x_val_before_training():
    # was: a (N, 784) validation set for a conv net failed only after the first epoch's training
    x, y = _batch(40)
    with pytest.raises(ValueError, match=r"x_val holds inputs of shape \(784,\), x of shape \(1, 28, 28\)"):
        fit(seed_network(0), x, y, x_val=x.reshape(40, 784), y_val=y, progress=False, log=_no_step)


def _no_step(epoch, step, loss):
    raise AssertionError("fit trained before checking its arguments")


def test_fit_refuses_an_optimizer_class():
    x, y = _batch(40)
    model = Sequential.from_spec(MLP_SPEC, seed=0)
    with pytest.raises(TypeError, match=r"Adam\(model.params\(\)"):
        fit(model, x, y, optimizer=Adam, progress=False)


@pytest.mark.parametrize("augment", [lambda xb, rng: xb[:-1], lambda xb, rng: None])
def test_fit_says_when_augment_changes_the_batch(augment):
    # was: "expected integer labels of shape (31,), got int64 (32,)" (blaming the labels) or
    # "object of type 'NoneType' has no len()"
    x, y = _batch(40)
    model = Sequential.from_spec(MLP_SPEC, seed=0)
    with pytest.raises(ValueError, match="augment"):
        fit(model, x, y, augment=augment, progress=False)


def test_minibatches_checks_its_arguments():
    # was: [] for n = -3, an AxisError for n = 10.0, "'float' object cannot be interpreted..."
    with pytest.raises(ValueError, match="n must be"):
        list(minibatches(-3, 4))
    with pytest.raises(ValueError, match="n must be"):
        list(minibatches(10.0, 4))
    for batch_size in (2.5, None, 0):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            list(minibatches(10, batch_size))


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("make", [SGD, Adam])
def test_optimizers_say_they_take_named_parameters(make):
    model = Sequential.from_spec(MLP_SPEC, seed=0)
    with pytest.raises(TypeError, match=r"model.params\(\)"):
        make(model)
    with pytest.raises(TypeError, match=r"model.params\(\)"):
        make(list(model.params().values()))
    with pytest.raises(TypeError, match="floating-point"):
        make({"w": np.ones(3, dtype=np.int64)})
    opt = make(model.params())
    with pytest.raises(TypeError, match=r"model.grads\(\)"):
        opt.step(list(model.params().values()))


# --------------------------------------------------------------------------- state, gradcheck, init
def test_load_state_dict_says_it_takes_a_dict():
    model = seed_network(0)
    for state in (list(model.state_dict().items()), seed_network(1), 5):
        with pytest.raises(TypeError, match="state_dict"):
            model.load_state_dict(state)


def test_numerical_gradient_refuses_integer_arrays():
    # was: x + h rounded back to x, a gradient of zeros (a check reports error 1.0 for a correct backward)
    with pytest.raises(TypeError, match="floating-point"):
        cnn_lib.numerical_gradient(lambda: 0.0, np.ones(3, dtype=np.int64))


def test_initialize_says_it_takes_a_model():
    with pytest.raises(TypeError, match="Sequential"):
        initialize(Dense(3, 2), "he")


def test_gradient_checks_refuse_float32():
    # central differences in float32 showed a correct backward pass with errors near 1, silently
    from cnn_lib.gradcheck import check_layer, check_model
    model = cnn_lib.Sequential.from_spec(["flatten", ("dense", 3)], input_shape=(4,), seed=0)
    x, y = np.ones((2, 4), np.float32), np.array([0, 1])
    with pytest.raises(TypeError, match="need float64"):
        check_model(model, x, y)
    with pytest.raises(TypeError, match="need float64"):
        check_layer(cnn_lib.Dense(4, 3, rng=0, dtype=np.float64), x)
    model64 = cnn_lib.Sequential.from_spec(["flatten", ("dense", 3)], input_shape=(4,), seed=0, dtype=np.float64)
    assert max(check_model(model64, x.astype(np.float64), y).values()) < 1e-6


def test_fit_refuses_an_lr_it_would_ignore():
    # with an optimizer, fit's lr was silently ignored: the optimizer's own rate was used
    model = Sequential.from_spec(["flatten", ("dense", 3)], input_shape=(4,), seed=0)
    x, y = np.ones((8, 4), np.float32), np.zeros(8, dtype=np.int64)
    with pytest.raises(ValueError, match="give the learning rate to the optimizer"):
        fit(model, x, y, optimizer=SGD(model.params(), lr=0.1), lr=0.5, progress=False)
    fit(model, x, y, optimizer=SGD(model.params(), lr=0.1), progress=False)    # its own rate: fine
    a, b = (Sequential.from_spec(["flatten", ("dense", 3)], input_shape=(4,), seed=0) for _ in range(2))
    before = {k: p.copy() for k, p in a.params().items()}
    fit(a, x, y, progress=False)
    # it trained, so that the comparison below means something
    assert not all(np.array_equal(before[k], a.params()[k]) for k in before)
    fit(b, x, y, optimizer=Adam(b.params(), lr=1e-3), progress=False)       # the default is Adam, lr 1e-3
    assert all(np.array_equal(a.params()[k], b.params()[k]) for k in a.params())


def test_logits_without_classes():
    # the message said "labels must lie in 0..-1"
    with pytest.raises(ValueError, match="at least one class"):
        cnn_lib.softmax_cross_entropy(np.zeros((2, 0)), np.array([0, 0]))
