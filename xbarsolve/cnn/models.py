"""Model loaders: Keras HDF5 (h5py only, no TensorFlow), PyTorch CIFAR ResNet state
dicts (needs torch), and the shipped 4-layer MNIST CNN of the paper.

All loaders return a :class:`~xbarsolve.cnn.layers.Model` in NHWC layout with HWIO
kernels.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .layers import (Activation, Add, AvgPool2D, BatchNorm, Conv2D, Dense, Flatten, GlobalAvgPool2D,
                     MaxPool2D, Model, Node, ShortcutPadA)

__all__ = ["load_keras_h5", "load_torch_resnet", "mnist_cnn4", "MNIST_CNN4_WEIGHTS", "PAPER_CONVERSION_AMPLITUDES",
           "paper_conversion_amplitudes"]

#: The shipped weights of the 4-layer MNIST CNN (trained by ``scripts/train_mnist_cnn.py``).
MNIST_CNN4_WEIGHTS = Path(__file__).resolve().parent / "weights" / "mnist_cnn4.npz"


def _decode(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def load_keras_h5(path: str | os.PathLike, name: str | None = None) -> Model:
    """Load a Keras (2.x) functional or sequential model from an HDF5 file with h5py.

    Parses the ``model_config`` JSON attribute and the ``model_weights`` group.  Supported
    layers: InputLayer, Conv2D (groups=1, dilation 1), Dense, BatchNormalization,
    Activation (relu/softmax/linear), ReLU, Add, MaxPooling2D, AveragePooling2D,
    GlobalAveragePooling2D, Flatten, Dropout (identity at inference).  A Conv2D or Dense
    with a fused activation becomes two nodes (``<name>`` and ``<name>/act``).

    Raises
    ------
    ValueError
        On an unsupported layer or option.
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path}: no 'model_config' attribute (not a Keras HDF5 model file)")
        cfg = json.loads(_decode(f.attrs["model_config"]))
        wg = f["model_weights"] if "model_weights" in f else f
        weights = {}
        for lname in wg.attrs.get("layer_names", list(wg.keys())):
            lname = _decode(lname)
            g = wg[lname]
            names = [_decode(n) for n in g.attrs.get("weight_names", [])]
            weights[lname] = {n.split("/")[-1].split(":")[0]: np.asarray(g[n], dtype=np.float64) for n in names}
    cls = cfg["class_name"]
    layers = cfg["config"]["layers"] if isinstance(cfg["config"], dict) else cfg["config"]
    nodes: list[Node] = []
    alias: dict[str, str] = {}  # keras layer name -> node name holding its output
    input_shape = None
    prev = None
    for L in layers:
        kind, c = L["class_name"], L["config"]
        lname = L.get("name", c.get("name"))
        if cls == "Functional" or cls == "Model":
            inbound = [alias[i[0]] for i in L["inbound_nodes"][0]] if L.get("inbound_nodes") else []
        else:  # Sequential
            inbound = [prev] if prev else []
        inputs = tuple(s for s in inbound if s != "input")
        w = weights.get(lname, {})
        act = None
        if kind == "InputLayer":
            input_shape = tuple(c["batch_input_shape"][1:])
            alias[lname] = "input"
            prev = "input"
            continue
        if "batch_input_shape" in c and input_shape is None:
            input_shape = tuple(c["batch_input_shape"][1:])
        if kind == "Conv2D":
            if c.get("data_format", "channels_last") != "channels_last":
                raise ValueError(f"{lname}: only channels_last is supported")
            if tuple(c.get("dilation_rate", (1, 1))) != (1, 1) or c.get("groups", 1) != 1:
                raise ValueError(f"{lname}: dilation and groups are not supported")
            layer = Conv2D(w["kernel"], w.get("bias") if c.get("use_bias", True) else None,
                           tuple(c["strides"]), c["padding"])
            act = c.get("activation", "linear")
        elif kind == "Dense":
            layer = Dense(w["kernel"], w.get("bias") if c.get("use_bias", True) else None)
            act = c.get("activation", "linear")
        elif kind == "BatchNormalization":
            ax = c.get("axis", -1)
            ax = ax[0] if isinstance(ax, list) else ax
            if ax not in (-1, 3, 1) or (ax == 1 and len(input_shape or ()) == 3):
                raise ValueError(f"{lname}: batch-norm over axis {ax} is not supported")
            n = (w.get("moving_mean")).shape[0]
            layer = BatchNorm(w.get("gamma", np.ones(n)) if c.get("scale", True) else np.ones(n),
                              w.get("beta", np.zeros(n)) if c.get("center", True) else np.zeros(n),
                              w["moving_mean"], w["moving_variance"], float(c.get("epsilon", 1e-3)))
        elif kind == "Activation":
            layer = Activation(c["activation"])
        elif kind == "ReLU":
            layer = Activation("relu")
        elif kind == "Softmax":
            layer = Activation("softmax")
        elif kind == "Add":
            layer = Add()
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            P = MaxPool2D if kind == "MaxPooling2D" else AvgPool2D
            layer = P(tuple(c["pool_size"]), tuple(c["strides"]) if c.get("strides") else None, c.get("padding", "valid"))
        elif kind == "GlobalAveragePooling2D":
            layer = GlobalAvgPool2D()
        elif kind == "Flatten":
            layer = Flatten()
        elif kind == "Dropout":
            alias[lname] = inbound[0]
            prev = inbound[0]
            continue
        else:
            raise ValueError(f"{path.name}: unsupported Keras layer {kind!r} ({lname})")
        nodes.append(Node(lname, layer, inputs))
        out = lname
        if act not in (None, "linear"):
            nodes.append(Node(f"{lname}/act", Activation(act), (lname,)))
            out = f"{lname}/act"
        alias[lname] = out
        prev = out
    if input_shape is None:
        raise ValueError(f"{path}: input shape not found in model_config")
    if cls in ("Functional", "Model"):
        outs = cfg["config"]["output_layers"]
        if len(outs) != 1:
            raise ValueError(f"{path}: only single-output models are supported")
        if alias[outs[0][0]] != nodes[-1].name:
            raise ValueError(f"{path}: the output layer is not the last layer")
    return Model(tuple(nodes), input_shape, name or path.stem)


def load_torch_resnet(path: str | os.PathLike, name: str | None = None) -> Model:
    """Load a CIFAR-10 ResNet (Idelbayev's ``resnet20/32/44/56`` "option A" layout) from a
    PyTorch checkpoint.  Needs ``torch`` (``pip install xbarsolve[torch]``).

    The network: conv3x3(3->16, pad 1) - BN - ReLU, three stages of basic blocks
    (conv3x3 - BN - ReLU - conv3x3 - BN, + shortcut, ReLU; the first block of stages 2 and
    3 has stride 2 and a zero-padding subsample shortcut), global average pool, linear.
    Inputs: NHWC, normalized per channel with mean (0.485, 0.456, 0.406) and std
    (0.229, 0.224, 0.225) on the [0, 1] scale (stored in ``Model.preprocess``).
    """
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("load_torch_resnet needs PyTorch: pip install torch (CPU wheel is enough)") from e
    # weights_only: unpickling may only rebuild tensors and plain containers, never run
    # code named in the file (loading a file must not import or call anything it names)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise FormatError(f"{path}: not a plain PyTorch state dict (it needs code to load, which is refused): {e}") from None
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    sd = {re.sub(r"^module\.", "", k): v.detach().cpu().numpy().astype(np.float64) for k, v in sd.items()}

    def conv(prefix, stride, pad=1):
        w = sd[f"{prefix}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        return Conv2D(w, None, (stride, stride), ((pad, pad), (pad, pad)))

    def bn(prefix):
        return BatchNorm(sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], sd[f"{prefix}.running_mean"],
                         sd[f"{prefix}.running_var"], 1e-5)

    nodes = [Node("conv1", conv("conv1", 1), ()), Node("bn1", bn("bn1"), ("conv1",)), Node("relu1", Activation("relu"), ("bn1",))]
    x = "relu1"
    planes_in = 16
    for s in (1, 2, 3):
        blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith(f"layer{s}.")})
        planes = 16 * 2 ** (s - 1)
        for b in blocks:
            p = f"layer{s}.{b}"
            stride = 2 if (s > 1 and b == 0) else 1
            nodes += [Node(f"{p}.conv1", conv(f"{p}.conv1", stride), (x,)),
                      Node(f"{p}.bn1", bn(f"{p}.bn1"), (f"{p}.conv1",)),
                      Node(f"{p}.relu1", Activation("relu"), (f"{p}.bn1",)),
                      Node(f"{p}.conv2", conv(f"{p}.conv2", 1), (f"{p}.relu1",)),
                      Node(f"{p}.bn2", bn(f"{p}.bn2"), (f"{p}.conv2",))]
            short = x
            if stride != 1 or planes_in != planes:
                nodes.append(Node(f"{p}.shortcut", ShortcutPadA(planes // 4), (x,)))
                short = f"{p}.shortcut"
            nodes += [Node(f"{p}.add", Add(), (f"{p}.bn2", short)), Node(f"{p}.relu2", Activation("relu"), (f"{p}.add",))]
            x = f"{p}.relu2"
            planes_in = planes
    nodes += [Node("pool", GlobalAvgPool2D(), (x,)),
              Node("linear", Dense(sd["linear.weight"].T, sd["linear.bias"]), ("pool",)),
              Node("softmax", Activation("softmax"), ("linear",))]
    return Model(tuple(nodes), (32, 32, 3), name or Path(path).stem.split("-")[0],
                 preprocess={"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": 1 / 255})


def mnist_cnn4(weights: str | os.PathLike | None = None) -> Model:
    """The paper's 4-layer MNIST CNN with the shipped weights (or a weights ``.npz``).

    conv 5x5x1x20 - ReLU - maxpool 2 - conv 5x5x20x50 - ReLU - maxpool 2 -
    conv 4x4x50x500 - ReLU - conv 1x1x500x10 - softmax; input (28, 28, 1) pixels / 255.
    Crossbars (dense mapping): 25x20, 500x50, 800x500, 500x10.  The software test
    accuracy is in ``Model.preprocess["test_accuracy"]``.
    """
    path = Path(weights) if weights is not None else MNIST_CNN4_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"MNIST CNN weights not found at {path}; train them with scripts/train_mnist_cnn.py")
    z = np.load(path)
    nodes = [
        Node("conv1", Conv2D(z["conv1_w"], z["conv1_b"]), ()),
        Node("relu1", Activation("relu"), ("conv1",)),
        Node("pool1", MaxPool2D((2, 2)), ("relu1",)),
        Node("conv2", Conv2D(z["conv2_w"], z["conv2_b"]), ("pool1",)),
        Node("relu2", Activation("relu"), ("conv2",)),
        Node("pool2", MaxPool2D((2, 2)), ("relu2",)),
        Node("conv3", Conv2D(z["conv3_w"], z["conv3_b"]), ("pool2",)),
        Node("relu3", Activation("relu"), ("conv3",)),
        Node("conv4", Conv2D(z["conv4_w"], z["conv4_b"]), ("relu3",)),
        Node("flatten", Flatten(), ("conv4",)),
        Node("softmax", Activation("softmax"), ("flatten",)),
    ]
    acc = float(z["test_accuracy"]) if "test_accuracy" in z.files else float("nan")
    return Model(tuple(nodes), (28, 28, 1), "mnist_cnn4", preprocess={"scale": 1 / 255, "test_accuracy": acc})


#: Conversion-signal amplitudes (V) of Zhang & Hu 2022, Tables 4 (MNIST CNN) and 5
#: (ResNet-20/32/56), by kernel shape (height, width, input channels, output channels);
#: a dense layer is a 1 x 1 kernel.  docs/model.md section 9 lists the tables.
PAPER_CONVERSION_AMPLITUDES: dict[tuple[int, int, int, int], float] = {
    (5, 5, 1, 20): 0.1, (5, 5, 20, 50): 0.01, (4, 4, 50, 500): 0.001, (1, 1, 500, 10): 0.01,  # Table 4
    (3, 3, 3, 16): 0.1, (3, 3, 16, 16): 0.1, (3, 3, 16, 32): 0.1, (3, 3, 32, 32): 0.05,  # Table 5
    (3, 3, 32, 64): 0.05, (3, 3, 64, 64): 0.01, (1, 1, 64, 10): 0.1,
}
#: Table 5's amplitude of the 1 x 1 dimension-matching convolutions (any channel counts).
PAPER_SHORTCUT_AMPLITUDE = 0.1


def paper_conversion_amplitudes(model: Model) -> dict[str, float]:
    """The paper's per-layer conversion amplitudes (V) for a model's linear layers.

    Looks each layer's kernel shape up in :data:`PAPER_CONVERSION_AMPLITUDES`; 1 x 1
    convolutions not listed there are the ResNets' dimension-matching shortcuts
    (:data:`PAPER_SHORTCUT_AMPLITUDE`).  Pass the result as ``AnalogConfig(v_conv=...)``.

    Raises
    ------
    ValueError
        Naming the layer and its kernel shape when the paper gives no amplitude for it.

    Examples
    --------
    >>> paper_conversion_amplitudes(mnist_cnn4())
    {'conv1': 0.1, 'conv2': 0.01, 'conv3': 0.001, 'conv4': 0.01}
    """
    out = {}
    for nd in model.linear_nodes:
        layer = nd.layer
        if isinstance(layer, Dense):
            shape = (1, 1, *layer.kernel.shape)
        elif isinstance(layer, Conv2D):
            shape = tuple(int(k) for k in layer.kernel.shape)
        else:
            raise ValueError(f"layer {nd.name!r} ({type(layer).__name__}) has no entry in the paper's Tables 4-5")
        if shape in PAPER_CONVERSION_AMPLITUDES:
            out[nd.name] = PAPER_CONVERSION_AMPLITUDES[shape]
        elif shape[:2] == (1, 1):
            out[nd.name] = PAPER_SHORTCUT_AMPLITUDE
        else:
            raise ValueError(f"the paper gives no conversion amplitude for layer {nd.name!r} with kernel shape "
                             f"{'x'.join(map(str, shape))} (Tables 4-5 list "
                             f"{', '.join('x'.join(map(str, k)) for k in PAPER_CONVERSION_AMPLITUDES)})")
    return out
