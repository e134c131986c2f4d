"""Plain numpy training of an IR model: backprop, softmax cross-entropy, minibatch Adam.

How a weighted layer's weight is made from trainable arrays is a *parameterisation*. The base class,
:class:`FreeWeight`, trains the weight itself; compression methods subclass it to train a masked weight
(:mod:`sparq.compiler.prune`), a codebook (:mod:`sparq.compiler.share`) or a ternary scale pair (:mod:`sparq.compiler.ternary`), and
:func:`fit` trains any mix of them. Biases are always trained as they are.
"""

import copy
from functools import singledispatch

import numpy as np
from tqdm.auto import tqdm

from .errors import ConfigError, ShapeError
from .ir import AvgPool, Conv, Dense, Flatten, MaxPool, Relu, Reshape, Residual, forward, im2col, trace, trace_layers

__all__ = ["FreeWeight", "Adam", "backward", "gradients", "fit", "accuracy", "softmax_cross_entropy",
           "single_threaded_blas"]


class FreeWeight:
    """The weight itself is trained. Subclasses override :meth:`weight`, :meth:`grads` and :meth:`project`."""

    def __init__(self, weight):
        self.w = np.array(weight, dtype=np.float32)

    def params(self):
        """The trainable arrays, updated in place by the optimizer."""
        return [self.w]

    def weight(self):
        """The effective weight the layer computes with."""
        return self.w

    def grads(self, grad_weight):
        """Gradients of :meth:`params` given the gradient of the loss with respect to :meth:`weight`."""
        return [grad_weight]

    def project(self):
        """Restore the parameterisation's invariants after an optimizer step (nothing to do here)."""


class Adam:
    """Adam (Kingma and Ba) over a list of arrays, updated in place."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        """One update of every array in ``params`` by its gradient in ``grads``."""
        self.t += 1
        scale = self.lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= (scale * m / (np.sqrt(v) + self.eps)).astype(p.dtype)


def softmax_cross_entropy(logits, y):
    """Mean cross-entropy of ``logits`` (n, classes) against labels ``y``, and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    grad = np.exp(log_p)
    grad[np.arange(n), y] -= 1
    return float(-log_p[np.arange(n), y].mean()), grad / n


def _col2im(dcols, x_shape, stride, padding, dilation=(1, 1)):
    """Sum the gradients of sliding windows (n, c, oh, ow, kh, kw) back onto the (n, c, h, w) input.

    ``padding`` is every row and column the windows saw around the input (a pool's ceil-mode overhang included).
    """
    n, c, h, w = x_shape
    top, left, bottom, right = padding
    oh, ow, kh, kw = dcols.shape[2:]
    dx = np.zeros((n, c, max(h + top + bottom, (oh - 1) * stride[0] + (kh - 1) * dilation[0] + 1),
                   max(w + left + right, (ow - 1) * stride[1] + (kw - 1) * dilation[1] + 1)), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dilation[0], j * dilation[1]
            dx[:, :, y0:y0 + stride[0] * oh:stride[0], x0:x0 + stride[1] * ow:stride[1]] += dcols[..., i, j]
    return dx[:, :, top:top + h, left:left + w]


@singledispatch
def backward(layer, x, dy):
    """Backprop through ``layer`` with input ``x`` and output gradient ``dy``: ``(dx, grad_weight, grad_bias)``.

    The weight and bias gradients are None for layers without them.
    """
    raise ShapeError(f"layer {layer.name!r}: no backward pass for {type(layer).__name__}")


@backward.register
def _(layer: Dense, x, dy):
    return dy @ layer.weight, dy.T @ x, dy.sum(axis=0)


@backward.register
def _(layer: Conv, x, dy):
    cols = im2col(x, layer.kernel, layer.stride, layer.padding, dilation=layer.dilation)
    n, c, oh, ow, kh, kw = cols.shape
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)
    dy2 = dy.transpose(0, 2, 3, 1).reshape(n * oh * ow, -1)
    grad_weight = (dy2.T @ cols).reshape(layer.weight.shape)
    dcols = (dy2 @ layer.weight.reshape(len(layer.weight), -1)).reshape(n, oh, ow, c, kh, kw)
    dx = _col2im(dcols.transpose(0, 3, 1, 2, 4, 5), x.shape, layer.stride, layer.padding, layer.dilation)
    return dx, grad_weight, dy2.sum(axis=0)


@backward.register
def _(layer: Relu, x, dy):
    return dy * (x > 0), None, None


@backward.register(Flatten)
@backward.register(Reshape)
def _(layer, x, dy):
    return dy.reshape(x.shape), None, None


@backward.register
def _(layer: MaxPool, x, dy):
    windows = layer.windows(x, -np.inf)
    n, c, oh, ow, kh, kw = windows.shape
    winner = windows.reshape(n, c, oh, ow, kh * kw).argmax(axis=4)
    dcols = (winner[..., None] == np.arange(kh * kw)).reshape(windows.shape) * dy[..., None, None]
    return _col2im(dcols.astype(np.float32), x.shape, layer.stride, layer.full_padding(x.shape[2:]),
                   layer.dilation), None, None


@backward.register
def _(layer: AvgPool, x, dy):
    share = (dy / layer.divisor(x.shape[2:]))[..., None, None]
    dcols = np.broadcast_to(share, (*dy.shape, *layer.kernel))
    return _col2im(dcols, x.shape, layer.stride, layer.full_padding(x.shape[2:]), layer.dilation), None, None


def gradients(model, x, y, loss=softmax_cross_entropy):
    """Loss of ``model`` on the batch ``(x, y)`` and ``{layer name: (grad_weight, grad_bias)}`` of its weighted layers.

    ``loss(logits, y)`` returns the mean loss and its gradient with respect to the logits (default: softmax
    cross-entropy against integer labels ``y``).
    """
    values = trace(model, x)
    value, dy = loss(values[-1], y)
    grads = {}
    _backprop(model.layers, values, dy, grads)
    return value, grads


def _backprop(layers, values, dy, grads):
    """The gradient at the input of ``layers`` (run on ``values = trace_layers(layers, x)``) for output gradient
    ``dy``; the weighted layers' gradients go into ``grads``. A residual block passes ``dy`` through its skip and
    adds its body's input gradient."""
    for layer, layer_input in zip(reversed(layers), reversed(values[:-1])):
        if isinstance(layer, Residual):
            dy = dy + _backprop(layer.layers, trace_layers(layer.layers, layer_input), dy, grads)
            continue
        dy, grad_weight, grad_bias = backward(layer, layer_input, dy)
        if grad_weight is not None:
            grads[layer.name] = (grad_weight, grad_bias)
    return dy


def accuracy(model, x, y, batch_size=1024):
    """Fraction of samples whose arg-max output is the label."""
    hits = sum(int((forward(model, x[i:i + batch_size]).argmax(axis=1) == y[i:i + batch_size]).sum())
               for i in range(0, len(x), batch_size))
    return hits / len(x)


def fit(model, x, y, *, epochs, lr=1e-3, batch_size=32, seed=0, weights=None, weight_decay=0.0, desc="train",
        progress=None, loss=softmax_cross_entropy):
    """Train a copy of ``model`` on ``(x, y)`` with minibatch Adam (softmax cross-entropy by default); return it.

    ``weights`` maps weighted-layer names to parameterisations (:class:`FreeWeight` or a subclass); they are trained
    in place, and every other weighted layer gets a :class:`FreeWeight`. ``weight_decay`` adds L2 on the effective
    weights. Minibatches are shuffled with ``seed``, so a run is deterministic. ``progress`` shows a tqdm bar over
    epochs (None: only on a terminal). ``loss(logits, y[batch])`` gives a minibatch's loss and its logit gradient
    (default: softmax cross-entropy; ``y`` may then hold any per-sample targets, as :mod:`sparq.compiler.distill` does).
    """
    if epochs < 0 or lr <= 0 or batch_size < 1:
        raise ConfigError(f"training needs epochs >= 0, lr > 0 and batch_size >= 1; got epochs={epochs}, lr={lr}, "
                          f"batch_size={batch_size}")
    model = copy.deepcopy(model)
    weights = dict(weights or {})
    unknown = set(weights) - {layer.name for layer in model.weighted()}
    if unknown:
        raise ConfigError(f"no weighted layer called {sorted(unknown)}; weighted layers are "
                          f"{[layer.name for layer in model.weighted()]}")
    layers = model.weighted()
    for layer in layers:
        weights.setdefault(layer.name, FreeWeight(layer.weight))
        layer.weight = weights[layer.name].weight()
    optimizer = Adam([p for layer in layers for p in (*weights[layer.name].params(), layer.bias)], lr)
    rng = np.random.default_rng(seed)
    bar = tqdm(range(epochs), desc=desc, disable=None if progress is None else not progress,
               leave=False)
    with single_threaded_blas():
        _train_epochs(model, x, y, layers, weights, optimizer, rng, bar, batch_size, weight_decay, loss)
    return model


def _train_epochs(model, x, y, layers, weights, optimizer, rng, bar, batch_size, weight_decay, loss_fn):
    """The epoch loop of :func:`fit`."""
    for _ in bar:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            loss, grads = gradients(model, x[batch], y[batch], loss_fn)
            flat = []
            for layer in layers:
                grad_weight, grad_bias = grads[layer.name]
                if weight_decay:
                    grad_weight = grad_weight + weight_decay * layer.weight
                flat += [*weights[layer.name].grads(grad_weight), grad_bias]
            optimizer.step(flat)
            for layer in layers:
                weights[layer.name].project()
                layer.weight = weights[layer.name].weight()
        bar.set_postfix(loss=f"{loss:.4f}")


def single_threaded_blas():
    """A context in which BLAS runs on one thread.

    Training multiplies small matrices (a minibatch by a layer), for which BLAS threads cost more than they give; on
    a busy machine their spin-waiting made one minibatch step up to a hundred times slower.
    """
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    return threadpool_limits(limits=1, user_api="blas")
