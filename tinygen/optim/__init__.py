"""``tinygen.optim``: SGD, Adam, AdamW and RMSprop with PyTorch's update rules, and the
learning-rate schedules the recipes use (``schedules``)."""
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from . import schedules  # noqa: F401
