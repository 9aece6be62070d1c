"""``tinygen graph``: draw the computation graph of a small named model.

    tinygen graph --model mlp --input-shape 1,1,8,8                 # DOT on stdout
    tinygen graph --model tiny-pixelcnn --input-shape 1,1,8,8 --loss --out graph.svg

The model runs one forward pass on a random input of the given shape (the input
does not require grad, so it shows as a grey constant; parameters are named
leaves).  ``--out`` writes .dot text, or .svg/.png/.pdf through Graphviz's
``dot`` program (Debian/Ubuntu: ``apt-get install graphviz``).
"""
from __future__ import annotations

import argparse
import math
import sys

MODELS = ("mlp", "tiny-pixelcnn")


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,1,8,8, "
                                         f"got {text!r}") from None
    if not shape or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"dimensions must be positive integers, got {text!r}")
    return shape


def build_model(name: str, input_shape: tuple):
    """A small model for ``input_shape`` and the loss to pair it with ``loss(output, x)``."""
    from tinygen import nn
    from tinygen.nn import functional as F

    if name == "mlp":
        if len(input_shape) < 2:
            raise ValueError("mlp: --input-shape needs a batch dimension and features, e.g. 1,784")
        features = math.prod(input_shape[1:])
        model = nn.Sequential(nn.Flatten(), nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 10))

        def loss(output, x):
            from tinygen import zeros, int64

            return F.cross_entropy(output, zeros(output.shape[0], dtype=int64))

        return model, loss
    if name == "tiny-pixelcnn":
        if len(input_shape) != 4:
            raise ValueError("tiny-pixelcnn: --input-shape must be N,C,H,W, e.g. 1,1,8,8")
        channels = input_shape[1]
        model = nn.Sequential(nn.MaskedConv2d(channels, 8, 7, mask_type="A"), nn.ReLU(),
                              nn.MaskedConv2d(8, 8, 3, mask_type="B"), nn.ReLU(),
                              nn.Conv2d(8, channels, 1))

        def loss(output, x):
            return F.binary_cross_entropy_with_logits(output, (x > 0).float())

        return model, loss
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def cmd_graph(args: argparse.Namespace) -> int:
    import tinygen as tg

    tg.manual_seed(args.seed)
    try:
        model, loss_fn = build_model(args.model, args.input_shape)
    except ValueError as exc:
        print(f"tinygen graph: {exc}", file=sys.stderr)
        return 2
    x = tg.randn(*args.input_shape)
    output = model(x)
    if args.loss:
        output = loss_fn(output, x)
    params = dict(model.named_parameters())
    params["loss" if args.loss else "output"] = output
    dot = tg.viz.to_dot(output, params=params, show_saved=args.show_saved)
    if args.out is None:
        sys.stdout.write(dot)
        return 0
    try:
        tg.viz.render(dot, args.out)
    except (tg.viz.GraphvizNotFoundError, ValueError, RuntimeError, OSError) as exc:
        print(f"tinygen graph: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


def add_parser(commands) -> None:
    graph = commands.add_parser(
        "graph", help="draw the computation graph of a small model (DOT, SVG, PNG)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    graph.add_argument("--model", choices=MODELS, default="mlp")
    graph.add_argument("--input-shape", type=parse_shape, default=(1, 1, 8, 8),
                       metavar="N,C,H,W", help="input shape (default 1,1,8,8)")
    graph.add_argument("--out", default=None,
                       help="output file: .dot, .svg, .png or .pdf (default: DOT on stdout)")
    graph.add_argument("--loss", action="store_true", help="draw the graph up to the loss")
    graph.add_argument("--show-saved", action="store_true",
                       help="show the bytes each op keeps for backward")
    graph.add_argument("--seed", type=int, default=0)
    graph.set_defaults(func=cmd_graph)
