import pytest

@pytest.fixture
def torch():
    """PyTorch CPU, an outside oracle (the test is skipped where it is not installed)."""
    return pytest.importorskip("torch")
