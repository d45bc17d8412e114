"""Digital CNN layers: padding and stride conventions, im2col against a naive convolution,
pooling, batch-norm folding, and the Keras/PyTorch loaders on the shared models."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsolve.cnn import layers as L
from xbarsolve.cnn.datasets import cifar10_keras_input, load_cifar10, load_mnist, read_idx
from xbarsolve.cnn.models import load_keras_h5, mnist_cnn4


def naive_conv(x, kernel, strides, pads):
    """Direct cross-correlation with explicit zero padding (the frameworks' definition)."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw, ci, co = kernel.shape
    Ho = (xp.shape[1] - kh) // strides[0] + 1
    Wo = (xp.shape[2] - kw) // strides[1] + 1
    out = np.zeros((x.shape[0], Ho, Wo, co))
    for n in range(x.shape[0]):
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[n, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
                out[n, i, j] = np.tensordot(patch, kernel, axes=3)
    return out


@pytest.mark.parametrize("n, k, s, expected", [
    (32, 3, 1, (1, 1)),   # 'same', stride 1: symmetric
    (32, 3, 2, (0, 1)),   # TensorFlow pads the extra row/column after: (32-1)//2*2+3-32 = 1
    (32, 1, 2, (0, 0)),   # 1x1 stride-2 projection shortcut: no padding
    (5, 3, 2, (1, 1)),
    (28, 5, 1, (2, 2)),
    (7, 4, 3, (1, 2)),    # out = 3, total = 2*3 + 4 - 7 = 3 -> (1, 2)
])
def test_keras_same_padding(n, k, s, expected):
    assert L.same_padding(n, k, s) == expected
    out = L.conv_output_size(n, k, s, expected)
    assert out == -(-n // s)  # Keras: ceil(n / stride)


def test_resolve_padding_valid_and_explicit():
    assert L.resolve_padding("valid", (32, 32), (3, 3), (2, 2)) == ((0, 0), (0, 0))
    assert L.resolve_padding(((1, 1), (2, 0)), (8, 8), (3, 3), (1, 1)) == ((1, 1), (2, 0))
    with pytest.raises(ValueError):
        L.resolve_padding("full", (8, 8), (3, 3), (1, 1))


@pytest.mark.parametrize("padding, strides", [("same", (1, 1)), ("same", (2, 2)), ("valid", (1, 1)),
                                              ("valid", (2, 1)), (((1, 1), (1, 1)), (2, 2))])
def test_conv_matches_naive(rng, padding, strides):
    x = rng.normal(size=(2, 9, 8, 3))
    k = rng.normal(size=(3, 3, 3, 4))
    b = rng.normal(size=4)
    conv = L.Conv2D(k, b, strides, padding)
    pads = conv.pads(x.shape[1:3])
    ref = naive_conv(x, k, strides, pads) + b
    np.testing.assert_allclose(conv.forward(x), ref, rtol=1e-12, atol=1e-12)


def test_pytorch_symmetric_padding_differs_from_keras_same_at_stride_2(rng):
    x = rng.normal(size=(1, 8, 8, 2))
    k = rng.normal(size=(3, 3, 2, 2))
    keras = L.Conv2D(k, None, (2, 2), "same").forward(x)
    torch_like = L.Conv2D(k, None, (2, 2), ((1, 1), (1, 1))).forward(x)
    assert keras.shape == torch_like.shape == (1, 4, 4, 2)
    assert not np.allclose(keras, torch_like)
    # Keras 'same' at stride 2 equals explicit (0, 1) padding.
    np.testing.assert_allclose(keras, L.Conv2D(k, None, (2, 2), ((0, 1), (0, 1))).forward(x), rtol=1e-14)


def test_pooling(rng):
    x = rng.normal(size=(2, 6, 6, 3))
    mp = L.MaxPool2D((2, 2)).forward(x)
    np.testing.assert_array_equal(mp, x.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4)))
    ap = L.AvgPool2D((3, 3)).forward(x)
    np.testing.assert_allclose(ap, x.reshape(2, 2, 3, 2, 3, 3).mean(axis=(2, 4)), rtol=1e-14)
    np.testing.assert_allclose(L.GlobalAvgPool2D().forward(x), x.mean(axis=(1, 2)), rtol=1e-14)
    # Keras 'same' average pooling does not count the padded cells.
    ones = np.ones((1, 5, 5, 1))
    np.testing.assert_allclose(L.AvgPool2D((2, 2), (2, 2), "same").forward(ones), np.ones((1, 3, 3, 1)))


def test_fold_batchnorm_is_exact(rng):
    k = rng.normal(size=(3, 3, 2, 4))
    bn = L.BatchNorm(rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.1, 2, 4))
    model = L.Model((L.Node("c", L.Conv2D(k, rng.normal(size=4), (1, 1), "same")), L.Node("bn", bn, ("c",)),
                     L.Node("r", L.Activation("relu"), ("bn",)), L.Node("p", L.GlobalAvgPool2D(), ("r",))), (6, 6, 2))
    folded = L.fold_batchnorm(model)
    assert len(folded.nodes) == 3
    x = rng.normal(size=(3, 6, 6, 2))
    np.testing.assert_allclose(folded.forward(x), model.forward(x), rtol=1e-12, atol=1e-14)


def test_model_rejects_unknown_inputs():
    with pytest.raises(ValueError, match="not an earlier node"):
        L.Model((L.Node("a", L.Activation("relu"), ("b",)),), (2,))


def test_loaders_read_shared_files(data_dir):
    x, y = load_mnist(data_dir, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert read_idx(data_dir / "mnist" / "train-labels-idx1-ubyte.gz").shape == (60000,)
    xc, yc = load_cifar10(data_dir)
    assert xc.shape == (1000, 32, 32, 3) and yc[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    model = load_keras_h5(data_dir / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5")
    assert model.input_shape == (32, 32, 3)
    assert len(model.linear_nodes) == 22  # 19 3x3 convolutions + 2 projection shortcuts + dense
    assert model.logits_node == "dense_1"


def test_keras_resnet20_reference_accuracy(data_dir):
    """The data README's reference point: 93.3 % on the first 300 CIFAR-10 test images
    (92.1 % on all 1,000, checked in the slow test)."""
    x, y = load_cifar10(data_dir, n=300)
    mean = np.load(data_dir / "models" / "keras_resnet_cifar10" / "cifar10_x_train_mean.npy")
    model = load_keras_h5(data_dir / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5")
    pred = model.predict(cifar10_keras_input(x, mean))
    assert (pred == y).sum() == 280  # 93.3 %


@pytest.mark.slow
def test_keras_resnet20_reference_accuracy_1000(data_dir):
    x, y = load_cifar10(data_dir)
    mean = np.load(data_dir / "models" / "keras_resnet_cifar10" / "cifar10_x_train_mean.npy")
    model = load_keras_h5(data_dir / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5")
    assert (model.predict(cifar10_keras_input(x, mean)) == y).sum() == 921


def test_shipped_mnist_cnn(data_dir):
    model = mnist_cnn4()
    assert [nd.layer.kernel.shape for nd in model.linear_nodes] == [(5, 5, 1, 20), (5, 5, 20, 50), (4, 4, 50, 500), (1, 1, 500, 10)]
    x, y = load_mnist(data_dir, "test")
    pred = model.predict((x[:1000] / 255.0)[..., None])
    assert (pred == y[:1000]).mean() > 0.97
    assert model.preprocess["test_accuracy"] > 0.98


def test_conv_padding_matches_pytorch(rng, torch):
    """PyTorch's own conv2d (NCHW, OIHW) against ours (NHWC, HWIO) with explicit padding."""
    x = rng.normal(size=(2, 9, 9, 3))
    k = rng.normal(size=(3, 3, 3, 5))
    for stride, pad in ((1, 1), (2, 1), (2, 0)):
        ref = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(k.transpose(3, 2, 0, 1)),
                                         stride=stride, padding=pad).numpy().transpose(0, 2, 3, 1)
        ours = L.Conv2D(k, None, (stride, stride), ((pad, pad), (pad, pad))).forward(x)
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_torch_resnet20_loader(data_dir, torch):
    from xbarsolve.cnn.datasets import cifar10_torch_input
    from xbarsolve.cnn.models import load_torch_resnet

    model = load_torch_resnet(data_dir / "models" / "torch_resnet_cifar10" / "resnet20-12fca82f.th")
    assert len(model.linear_nodes) == 20  # option-A shortcuts have no weights
    x, y = load_cifar10(data_dir, n=300)
    acc = (model.predict(cifar10_torch_input(x)) == y).mean()
    assert acc > 0.88  # published full-test-set accuracy 91.73 %; 91.3 % on these 300


class _Boom:
    """Unpickling this object would call ``Path.touch`` on a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_torch_resnet_loader_refuses_a_checkpoint_that_runs_code(tmp_path, torch):
    """A crafted checkpoint whose unpickling calls a function is refused, and the function
    never runs (the loader used to unpickle with ``weights_only=False``)."""
    from xbarsolve.cnn.models import load_torch_resnet
    from xbarsolve.errors import FormatError

    marker = tmp_path / "ran"
    path = tmp_path / "evil.th"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(16, 3, 3, 3)}, "x": _Boom(str(marker))}, str(path))
    with pytest.raises(FormatError, match="needs code to load"):
        load_torch_resnet(path)
    assert not marker.exists()
