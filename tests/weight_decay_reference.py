"""A numpy reference for SGD steps with weight decay, shared by the engine tests (issue 24, point 1).

The network is one softmax Dense layer, ``p = softmax(x W + b)``, trained on the mean
cross-entropy of each batch, so its gradient is written out by hand here:
``dz = (p - onehot(y)) / B``, ``dW = x^T dz``, ``db = sum(dz)``.  The two modes, worked out
for SGD with momentum m, learning rate lr and decay wd (Keras' velocity form,
``v <- m v - lr g``, ``w <- w + v``):

* coupled (Caffe, TF 1's L2 loss term, PyTorch): ``g = dL/dw + wd w``, then the step;
* decoupled (Keras' ``SGD(weight_decay=wd)``): ``w <- w - lr wd w`` first, then the step
  with ``g = dL/dw`` taken at the weights before the decay.

After one step from v = 0 both give ``w - lr (g + wd w)``; after the second the coupled
update carries ``m lr wd w0`` more (the decay went into the velocity), which is what tells
the two apart.
"""

from __future__ import annotations

import numpy as np

X = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
Y = np.random.default_rng(1).integers(0, 3, 16).astype("int64")
BATCH, LEARNING_RATE, MOMENTUM, DECAY = 8, 0.1, 0.9, 0.2


def gradient(w, b, x, y):
    z = x.astype(np.float64) @ w + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    dz = p.copy()
    dz[np.arange(len(y)), y] -= 1.0
    dz /= len(y)
    return x.T.astype(np.float64) @ dz, dz.sum(axis=0)


def sgd_steps(w, b, mode: str, steps: int = 2, x=X, y=Y, batch=BATCH, lr=LEARNING_RATE, m=MOMENTUM, wd=DECAY):
    """(W, b) after ``steps`` steps on the batches x[0:B], x[B:2B], ... (no shuffling)."""
    params = [np.asarray(w, np.float64), np.asarray(b, np.float64)]
    velocity = [np.zeros_like(p) for p in params]
    for step in range(steps):
        xb, yb = x[step * batch:(step + 1) * batch], y[step * batch:(step + 1) * batch]
        grads = list(gradient(params[0], params[1], xb, yb))
        for i in range(2):
            if mode == "coupled":
                grads[i] = grads[i] + wd * params[i]
            elif mode == "decoupled":
                params[i] = params[i] - lr * wd * params[i]
            else:
                raise ValueError(mode)
            velocity[i] = m * velocity[i] - lr * grads[i]
            params[i] = params[i] + velocity[i]
    return params


def assert_matches(actual, w0, b0, mode: str, steps: int = 2, rtol=1e-5, atol=1e-6) -> None:
    """``actual`` = [W, b] is the reference for ``mode``, and (steps >= 2) not the other mode's."""
    expected = sgd_steps(w0, b0, mode, steps)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    if steps >= 2:
        other = sgd_steps(w0, b0, "decoupled" if mode == "coupled" else "coupled", steps)
        assert np.max(np.abs(np.asarray(actual[0]) - other[0])) > 100 * atol, "the two modes agree: not discriminating"
