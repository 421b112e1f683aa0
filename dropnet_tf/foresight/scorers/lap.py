"""Lookahead pruning, LAP (Park et al. 2020; thesis Section 3.2, eq. 3.3).

For a weight w of layer i connecting input unit j to output unit k,

    L_i(w) = |w| · ‖W_{i-1}[j, :]‖ · ‖W_{i+1}[:, k]‖                     (thesis eq. 3.3)

where, in the thesis' (out, in) layout, W_{i-1}[j, :] are the weights *into* unit j and
W_{i+1}[:, k] the weights *out of* unit k.  Keras stores kernels as (..., in, out), so here

* the previous factor of input unit j is the norm of the previous kernel's output slice j
  (Dense: column j; Conv: ``kernel[..., j]`` over kh, kw, cin);
* the next factor of output unit k is the norm of the next kernel's input slice k
  (Dense: row k; Conv: ``kernel[..., k, :]`` over kh, kw, cout).

A unit of a convolution is a channel.  Between a convolution with C output channels and a
Dense layer reading its flattened output (conv → Flatten → Dense), flattened position j
belongs to channel j mod C (channels_last; ⌊j / (n/C)⌋ for channels_first): its previous
factor is that channel's norm, and the convolution's next factor for channel c is the norm
over every Dense row of channel c.

Neighbours are taken from the order of ``weights`` (layer order), not from the graph: the
previous / next *kernel* in that list is W_{i-1} / W_{i+1} when its unit count matches
(out of W_{i-1} = in of W_i), or when it is a convolution feeding a Dense whose input size
is a multiple of its channel count (a flatten).  Otherwise — the first layer's previous
side, the last layer's next side, a neighbour with another unit count (branches, residual
shortcuts, reshapes), or a neighbour LAP does not define (recurrent, depthwise, grouped
kernels) — the factor is 1, i.e. that side reduces to magnitude pruning.  Biases and
BatchNorm parameters (when they are masked at all) are scored by |w| and are skipped when
looking for neighbours; recurrent / depthwise kernels score |w| and break the chain.
The current (masked) values are used, so pruned weights drop out of the norms.
"""

from __future__ import annotations

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.foresight.scorers.base import WeightScorer

# Parameters that are not a connection between two layers of units.
_NON_KERNEL_WEIGHTS = {"bias", "gamma", "beta"}

_EXCLUDED_LAYERS = tuple(
    cls
    for cls in (
        getattr(keras.layers, "DepthwiseConv1D", None),
        getattr(keras.layers, "DepthwiseConv2D", None),
        getattr(keras.layers, "SeparableConv1D", None),
        getattr(keras.layers, "SeparableConv2D", None),
        getattr(keras.layers, "Conv1DTranspose", None),
        getattr(keras.layers, "Conv2DTranspose", None),
        getattr(keras.layers, "Conv3DTranspose", None),
        keras.layers.RNN,
    )
    if cls is not None
)
_CONV_LAYERS = tuple(
    cls for cls in (keras.layers.Conv1D, keras.layers.Conv2D, getattr(keras.layers, "Conv3D", None)) if cls is not None
)


def _is_lap_kernel(weight) -> bool:
    """Dense / plain convolution kernels: (in, out) or (*spatial, cin, cout)."""
    layer = weight.layer
    if weight.weight_name != "kernel" or isinstance(layer, _EXCLUDED_LAYERS):
        return False
    if isinstance(layer, keras.layers.Dense):
        return len(weight.shape) == 2
    if isinstance(layer, _CONV_LAYERS):
        return getattr(layer, "groups", 1) == 1
    return False


def _is_conv(weight) -> bool:
    return len(weight.shape) > 2


def _channel_of_flat_position(n_flat: int, channels: int, data_format: str) -> np.ndarray:
    positions = np.arange(n_flat)
    if data_format == "channels_first":
        return positions // (n_flat // channels)
    return positions % channels


def _unit_norms(values: np.ndarray, axis: int) -> np.ndarray:
    """L2 norm of every slice along ``axis`` (one per unit on that axis)."""
    other = tuple(a for a in range(values.ndim) if a != axis % values.ndim)
    return np.sqrt(np.square(values).sum(axis=other))


def _previous_factor(prev, prev_values, current, current_values) -> np.ndarray | None:
    """‖W_{i-1}[j, :]‖ per input unit j of ``current``, or None when not adjacent."""
    n_in = current.shape[-2]
    into_units = _unit_norms(prev_values, -1)  # norms of the weights entering each unit
    if prev.shape[-1] == n_in:
        return into_units
    if _is_conv(prev) and not _is_conv(current) and n_in % prev.shape[-1] == 0:
        fmt = getattr(prev.layer, "data_format", "channels_last")
        return into_units[_channel_of_flat_position(n_in, prev.shape[-1], fmt)]
    return None


def _next_factor(current, current_values, nxt, next_values) -> np.ndarray | None:
    """‖W_{i+1}[:, k]‖ per output unit k of ``current``, or None when not adjacent."""
    n_out = current.shape[-1]
    n_next_in = nxt.shape[-2]
    if n_next_in == n_out:
        return _unit_norms(next_values, -2)  # norms of the weights leaving each unit
    if _is_conv(current) and not _is_conv(nxt) and n_next_in % n_out == 0:
        fmt = getattr(current.layer, "data_format", "channels_last")
        channel = _channel_of_flat_position(n_next_in, n_out, fmt)
        row_squares = np.square(next_values).sum(axis=1)
        return np.sqrt(np.bincount(channel, weights=row_squares, minlength=n_out))
    return None


def lookahead_scores(weights) -> dict[str, np.ndarray]:
    """Thesis eq. 3.3 for every weight, neighbours as described in the module docstring."""
    values = {w.name: np.asarray(w.variable.numpy(), np.float64) for w in weights}
    scores = {w.name: np.abs(values[w.name]) for w in weights}
    # The chain of connection tensors in layer order; None marks a break.
    chain = [w if _is_lap_kernel(w) else None for w in weights if w.weight_name not in _NON_KERNEL_WEIGHTS]
    for position, current in enumerate(chain):
        if current is None:
            continue
        ndim = len(current.shape)
        prev = chain[position - 1] if position > 0 else None
        nxt = chain[position + 1] if position + 1 < len(chain) else None
        if prev is not None:
            factor = _previous_factor(prev, values[prev.name], current, values[current.name])
            if factor is not None:
                scores[current.name] = scores[current.name] * factor.reshape((1,) * (ndim - 2) + (-1, 1))
        if nxt is not None:
            factor = _next_factor(current, values[current.name], nxt, values[nxt.name])
            if factor is not None:
                scores[current.name] = scores[current.name] * factor.reshape((1,) * (ndim - 1) + (-1,))
    return scores


class LAPScorer(WeightScorer):
    """Lookahead distortion |w| · ‖W_{i-1}[j, :]‖ · ‖W_{i+1}[:, k]‖ (thesis eq. 3.3).

    Data-free.  Neighbouring layers are found in layer order; where none fits the factor is
    1 (see the module docstring for the exact rule, conv → Flatten → Dense included).
    """

    name = "lap"
    needs_data = False

    def score(self, model, weights, data=None, rng=None):
        return lookahead_scores(weights)
