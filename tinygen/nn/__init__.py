"""``tinygen.nn``: Module, Parameter, layers, init and functional (PyTorch's names)."""
from .parameter import Parameter  # noqa: F401
from .module import Module  # noqa: F401
from .linear import Linear, Identity, Flatten  # noqa: F401
from .activation import (  # noqa: F401
    ReLU, LeakyReLU, ELU, Tanh, Sigmoid, Softplus, Softmax, LogSoftmax,
)
from .dropout import Dropout  # noqa: F401
from .container import Sequential, ModuleList, ModuleDict  # noqa: F401
from .loss import (  # noqa: F401
    CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss, MSELoss, L1Loss,
)
from . import init, functional, utils  # noqa: F401
from .norm import BatchNorm1d, BatchNorm2d, SyncBatchNorm  # noqa: F401
from .pooling import MaxPool2d, AvgPool2d, Upsample, GatedActivation  # noqa: F401
from .conv import (  # noqa: F401
    Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, CausalConv1d, MaskedConv2d,
    DownShiftedConv2d, DownRightShiftedConv2d,
)
