"""Public testing helpers: finite-difference gradient checks and hypothesis strategies.

``tinygen.testing.fake_cuda`` (imported on its own) makes tinygen see a numpy-backed
'cuda' device, to test device plumbing on machines without a GPU.
"""
from .gradcheck import gradcheck, gradgradcheck, GradcheckError  # noqa: F401
