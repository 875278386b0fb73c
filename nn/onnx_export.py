"""``to_onnx``: a fitted estimator as one ONNX graph, preprocessing and output mapping included.

``onnx`` is an optional dependency (``pip install nnserve[onnx]``): it is imported
only when ``to_onnx`` runs, so ``import nn`` never needs it.

The graph computes in the estimator's dtype: a float32 estimator takes float32
rows, a float64 one (``dtype='float64'``) float64 rows, so the exported model
agrees with ``predict``/``predict_proba`` to rounding, with no cast on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .activations import _SQRT_2_OVER_PI, GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .estimators import MLPClassifier, MLPRegressor
from .layers import Dense, Dropout, Layer
from .mlp import BaseMLP, NotFittedError

if TYPE_CHECKING:
    import onnx

INPUT = "input"
"""The graph's input, named as the v2 API's (``service/server/v2``)."""

DEFAULT_OPSET = 17
"""Softmax over one axis needs opset >= 13; 17 is read by every current runtime."""


class _Graph:
    """Nodes and constants under construction; every name is unique."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        from onnx import helper

        self.helper = helper
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        """A constant tensor (the graph's float dtype unless ``dtype`` is given); returns its name."""
        from onnx import numpy_helper

        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: Any) -> str:
        """Append one node with one output; returns the output's name."""
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _layer(graph: _Graph, layer: Layer, x: str) -> str:
    """The nodes of one layer applied to tensor ``x``; returns the output's name."""
    if isinstance(layer, Dense):
        W = graph.const(layer.params["W"], "W")
        b = graph.const(layer.params["b"], "b")
        return graph.op("Add", graph.op("MatMul", x, W), b, hint="dense")
    if isinstance(layer, Dropout):
        return x  # the identity at inference
    if isinstance(layer, ReLU):
        return graph.op("Relu", x)
    if isinstance(layer, Tanh):
        return graph.op("Tanh", x)
    if isinstance(layer, Sigmoid):
        return graph.op("Sigmoid", x)
    if isinstance(layer, LeakyReLU):
        return graph.op("LeakyRelu", x, alpha=layer.negative_slope)
    if isinstance(layer, GELU):
        # nnserve's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), from
        # primitives so that it runs on any opset (Gelu(approximate='tanh') needs opset 20).
        cube = graph.op("Mul", graph.op("Mul", x, x), x)
        inner = graph.op("Add", x, graph.op("Mul", cube, graph.const(0.044715, "gelu_c")))
        t = graph.op("Tanh", graph.op("Mul", inner, graph.const(_SQRT_2_OVER_PI, "sqrt_2_over_pi")))
        half_x = graph.op("Mul", x, graph.const(0.5, "half"))
        return graph.op("Mul", half_x, graph.op("Add", t, graph.const(1.0, "one")), hint="gelu")
    raise ValueError(f"to_onnx: no ONNX mapping for layer {layer!r}")


def _label_texts(classes: Any) -> np.ndarray[Any, Any]:
    """The classes as the text of the ``labels`` output: ``str`` of each, as the v2 API's BYTES labels."""
    return np.array([str(c) for c in np.asarray(classes).tolist()], dtype=object)


def to_onnx(estimator: BaseMLP, opset: int | None = None) -> onnx.ModelProto:
    """Export a fitted ``MLPClassifier`` or ``MLPRegressor`` as one ONNX model.

    The graph standardises its input with the stored ``x_mean_``/``x_scale_``,
    runs every layer (Dropout is the identity) and maps the logits as
    ``predict_proba``/``predict`` do.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        Fitted.
    opset : int, optional
        ONNX opset of the default domain; at least 13. Defaults to ``DEFAULT_OPSET``.

    Returns
    -------
    onnx.ModelProto
        Named like the tensors of nnserve's v2 API (``GET /v2/models/<name>``), so one
        client works against nnserve, Triton and onnxruntime alike: input ``input`` of
        shape (N, n_features) in the estimator's dtype. A classifier outputs
        ``predictions`` (N,) int64, the class index; ``labels`` (N,) the class as a
        string; ``probabilities`` (N, n_classes). A regressor outputs ``predictions``,
        (N,) when fitted on a 1-D ``y``, else (N, n_outputs).
    """
    import onnx
    from onnx import TensorProto, helper

    if not hasattr(estimator, "network_"):
        raise NotFittedError(f"to_onnx: this {type(estimator).__name__} is not fitted yet; call 'fit' first")
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if opset < 13:
        raise ValueError(f"to_onnx: opset must be >= 13 (Softmax over one axis), got {opset}")
    net = estimator.network_
    graph = _Graph(net.dtype)
    elem = helper.np_dtype_to_tensor_dtype(net.dtype)
    n_features = estimator.n_features_in_
    inputs = [helper.make_tensor_value_info(INPUT, elem, ["N", n_features])]

    x = graph.op("Sub", INPUT, graph.const(estimator.x_mean_, "x_mean"))
    x = graph.op("Div", x, graph.const(estimator.x_scale_, "x_scale"), hint="standardized")
    for layer in net.layers:
        x = _layer(graph, layer, x)

    if isinstance(estimator, MLPClassifier):
        classes = _label_texts(estimator.classes_)
        if len(classes) == 2:  # one logit: P(class 1) = sigmoid, P(class 0) its complement
            p1 = graph.op("Sigmoid", x)
            p0 = graph.op("Sub", graph.const([1.0], "one"), p1)
            proba = graph.op("Concat", p0, p1, axis=1)
        else:
            proba = graph.op("Softmax", x, axis=1)
        graph.nodes.append(helper.make_node("Identity", [proba], ["probabilities"]))
        graph.nodes.append(helper.make_node("ArgMax", ["probabilities"], ["predictions"], axis=1, keepdims=0))
        graph.nodes.append(
            helper.make_node("Gather", [graph.const(classes, "classes", classes.dtype), "predictions"], ["labels"])
        )
        outputs = [  # in the v2 API's order
            helper.make_tensor_value_info("predictions", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("labels", TensorProto.STRING, ["N"]),
            helper.make_tensor_value_info("probabilities", elem, ["N", len(classes)]),
        ]
    elif isinstance(estimator, MLPRegressor):
        x = graph.op("Mul", x, graph.const(estimator.y_scale_, "y_scale"))
        x = graph.op("Add", x, graph.const(estimator.y_mean_, "y_mean"))
        shape: list[str | int] = ["N"] if estimator._y_ndim == 1 else ["N", len(estimator.y_mean_)]
        flat = [-1] if estimator._y_ndim == 1 else [-1, len(estimator.y_mean_)]
        graph.nodes.append(helper.make_node("Reshape", [x, graph.const(flat, "shape", np.int64)], ["predictions"]))
        outputs = [helper.make_tensor_value_info("predictions", elem, shape)]
    else:
        raise TypeError(f"to_onnx: expected an MLPClassifier or MLPRegressor, got {type(estimator).__name__}")

    body = helper.make_graph(graph.nodes, type(estimator).__name__, inputs, outputs, graph.initializers)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)], producer_name="nnserve")
    onnx.checker.check_model(model, full_check=True)
    return model
