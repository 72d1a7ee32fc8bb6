"""Start a PyTorch training run from an exported ONNX model (float, or int8 QDQ dequantized).

The training scripts export with BatchNorm folded into each convolution, and only the ONNX
file of a shipped model is kept in git, so fine-tuning one means reading its weights back:
each BatchNorm becomes the identity (weight 1, running mean 0, variance 1 - eps) holding the
folded bias, and the caller keeps BN in eval mode (``freeze_batchnorm``) so that the loaded
function is exactly the exported one.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def initializers(path: str):
    """(graph, {name: tensor}) of an ONNX file; QDQ weights appear as their dequantized outputs,
    tensors the exporter shared through an Identity under both names."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(path).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
        elif n.op_type == "DequantizeLinear" and n.input[0] in init:
            q, scale, zero = (init[i].double() for i in n.input[:3])
            if scale.ndim == 1:  # per output channel along the node's axis
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            init[n.output[0]] = ((q - zero) * scale).float()
    return g, init


def load_folded_convs(graph, init: dict, model: nn.Module, path: str, probe=(1, 3, 64, 64)) -> int:
    """Copy the graph's Conv nodes into ``model``'s convolutions, both in execution order.

    The order of the model's convolutions is taken from one forward pass on zeros of shape
    ``probe``; a conv's bias goes into the BatchNorm2d that follows it (in the same parent
    module), or into the conv itself where none does. Returns the number of convolutions.
    """
    convs = [n for n in graph.node if n.op_type == "Conv"]
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules()
             if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(probe))
    for h in hooks:
        h.remove()
    bn_after = {a: b for mod in model.modules() for a, b in itertools.pairwise(mod.children())
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)}
    if len(order) != len(convs):
        raise ValueError(f"{path} has {len(convs)} convolutions; this model runs {len(order)}")
    with torch.no_grad():
        for conv, node in zip(order, convs, strict=True):
            w = init[node.input[1]]
            if conv.weight.shape != w.shape:
                raise ValueError(f"{path}: a conv of shape {tuple(w.shape)} where the model has "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight.copy_(w)
            bias = init[node.input[2]] if len(node.input) > 2 else torch.zeros(w.shape[0])
            if conv in bn_after:
                bn = bn_after[conv]
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            else:
                conv.bias.copy_(bias)
    return len(order)


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode (after ``model.train()``): folded weights take no batch statistics."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
