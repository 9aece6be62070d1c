"""``Dropout``: active in training mode, the identity in eval mode."""
from . import functional as F
from ._validate import probability
from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) while training.

    ``generator`` (a numpy Generator) makes the masks reproducible on their own;
    by default they come from ``tinygen.random.default_generator()``.
    """

    def __init__(self, p=0.5, generator=None):
        super().__init__()
        self.p = probability("p", p)
        self.generator = generator

    def forward(self, input):
        return F.dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self):
        return f"p={self.p}"
