"""nn: a numpy-only neural-network library with backpropagation.

Low level: layers, activations, losses, optimizers, schedules, callbacks and
``Network``. High level: ``MLPClassifier`` and ``MLPRegressor``, drop-in for
scikit-learn's, ``save``/``load`` for fitted estimators and ``to_onnx``
(needs the optional ``onnx`` package, imported only when called).
"""

from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .callbacks import Callback, EarlyStopping, History, ReduceLROnPlateau
from .estimators import MLPClassifier, MLPRegressor
from .layers import Dense, Dropout, Layer
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy
from .mlp import NotFittedError
from .network import Network, TrainingDivergedError
from .onnx_export import to_onnx
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .schedules import CosineDecay, InverseScaling, Schedule, StepDecay
from .serialization import ArtifactError, load, read_manifest, save

__all__ = [
    "GELU",
    "SGD",
    "Adam",
    "AdamW",
    "ArtifactError",
    "BinaryCrossEntropy",
    "Callback",
    "CosineDecay",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "History",
    "InverseScaling",
    "Layer",
    "LeakyReLU",
    "Loss",
    "MLPClassifier",
    "MLPRegressor",
    "MeanSquaredError",
    "Network",
    "NotFittedError",
    "Optimizer",
    "RMSprop",
    "ReLU",
    "ReduceLROnPlateau",
    "Schedule",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "TrainingDivergedError",
    "load",
    "read_manifest",
    "save",
    "to_onnx",
]
