"""`tinygen graph`: DOT on stdout, .dot/.svg files, and the message without Graphviz."""
import shutil

import pytest

from tinygen.cli import main


def test_mlp_graph_on_stdout(capsys):
    assert main(["graph", "--model", "mlp", "--input-shape", "2,1,4,4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph tinygen {")
    assert "Linear" in out and "ReLU" in out  # a linear layer is one node
    assert 'label="1.weight\\n(32, 16) float32\\nrequires_grad"' in out
    assert 'label="constant\\n(2, 16) float32"' in out  # the flattened input: no grad
    assert 'label="output\\n(2, 10) float32"' in out


def test_tiny_pixelcnn_graph_with_loss_to_a_dot_file(tmp_path, capsys):
    path = tmp_path / "g.dot"
    assert main(["graph", "--model", "tiny-pixelcnn", "--input-shape", "1,1,8,8", "--loss",
                 "--show-saved", "--out", str(path)]) == 0
    text = path.read_text()
    assert "Conv2dFn" in text and 'label="loss\\n() float32"' in text and "saved:" in text
    assert f"wrote {path}" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_output(tmp_path):
    path = tmp_path / "g.svg"
    assert main(["graph", "--model", "mlp", "--input-shape", "1,8", "--out", str(path)]) == 0
    assert path.read_text().lstrip().startswith("<?xml")


def test_svg_without_graphviz_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    assert main(["graph", "--out", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err
    assert "Graphviz 'dot' program" in err and "write a .dot file instead" in err


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        main(["graph", "--input-shape", "1,x,-2"])
    assert info.value.code == 2
    assert main(["graph", "--model", "tiny-pixelcnn", "--input-shape", "1,64"]) == 2
    assert "N,C,H,W" in capsys.readouterr().err
