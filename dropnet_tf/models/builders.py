"""What every model builder shares: argument checks, seeded initialisers, the layer factory.

Used by the three model families (:mod:`dropnet_tf.models.dropnet`,
:mod:`dropnet_tf.models.foresight`, :mod:`dropnet_tf.models.layerprune`).

=========================  ==============================================================
``check_*`` / ``is_int``   argument checks with the builders' error messages
``derive_layer_seed``      the seed of the i-th weighted layer of a model built with ``seed``
``PyTorchDefaultUniform``  U(±1/sqrt(fan_in)), PyTorch's default initialiser (serialisable
                           as ``dropnet_tf>PyTorchDefaultUniform``)
``resolve_init``           ``init`` name/alias → canonical name in ``INIT_OPTIONS``
``LayerFactory``           one model's layers: a fresh seeded initialiser per weight tensor,
                           masked (foresight) or plain classes, BN defaults ``TF_BN`` /
                           ``TORCH_BN``
=========================  ==============================================================
"""

from __future__ import annotations

import numbers

import numpy as np

from dropnet_tf.core.backend import keras
from dropnet_tf.core.masked_layers import MaskedConv2D, MaskedDense, MaskedGRU, MaskedLSTM

def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_num_classes(num_classes) -> int:
    if not is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    return int(num_classes)


def check_seed(seed) -> int | None:
    if seed is None:
        return None
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}.")
    return int(seed)


def derive_layer_seed(seed: int, index: int) -> int:
    """Seed of the initializer of the ``index``-th weighted layer of a model built with ``seed``.

    A 31-bit value mixed from ``(seed, index)`` by numpy's ``SeedSequence``: distinct layers
    and distinct seeds get unrelated streams, any non-negative ``seed`` is accepted (unlike
    ``seed * 1000 + index``, which overflows Keras' 32-bit seeds for large seeds), and the
    result is a plain Python ``int`` as Keras 3 requires.
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0]
    return int(state) >> 1


#: Standard deviation of the ``"random_normal"`` / ``"truncated_normal"`` options.
NORMAL_INIT_STDDEV: float = 1.0

#: The accepted ``init`` names.
INIT_OPTIONS: tuple[str, ...] = (
    "glorot_uniform",
    "he_normal",
    "random_normal",
    "truncated_normal",
    "pytorch_default",
    "keras_default",
    "tf1_variance_scaling",
)

#: SNIP's Table 3 names for the same initialisers.
INIT_ALIASES: dict[str, str] = {
    "vs_x": "glorot_uniform",
    "vs_h": "he_normal",
    "rn": "random_normal",
    "tn": "truncated_normal",
    "tf1_vs": "tf1_variance_scaling",
}

# --------------------------------------------------------------------------------------------
# The thesis' initializer
# --------------------------------------------------------------------------------------------


@keras.utils.register_keras_serializable(package="dropnet_tf")
class PyTorchDefaultUniform(keras.initializers.Initializer):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weights and biases.

    PyTorch initialises ``nn.Linear`` and ``nn.Conv2d`` weights with
    ``kaiming_uniform_(a=sqrt(5))``, i.e. bound gain * sqrt(3 / fan_in) with gain
    sqrt(2 / (1 + 5)), which is exactly 1/sqrt(fan_in); biases are U(±1/sqrt(fan_in)) with the
    fan-in of the weight.  The thesis (Section 4.1.3) initialises every network this way.

    ``fan_in`` is computed from the shape in Keras' layouts when not given:

    * Dense kernel ``(in, out)`` → ``in``;
    * Conv kernel ``(kh, kw, in, out)`` (any rank) → ``kh * kw * in``, the product of every
      axis but the last (the output channels);
    * LSTM/GRU ``kernel`` ``(input_dim, gates * units)`` → ``input_dim`` and
      ``recurrent_kernel`` ``(units, gates * units)`` → ``units``.

    A 1-D shape (a bias) has no fan-in of its own: pass ``fan_in`` explicitly.  The values are
    variance ``bound**2 / 3``.
    """

    def __init__(self, fan_in: int | None = None, seed: int | None = None):
        if fan_in is not None and (not is_int(fan_in) or fan_in < 1):
            raise ValueError(f"fan_in must be None or a positive integer, got {fan_in!r}.")
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}.")
        self.fan_in = None if fan_in is None else int(fan_in)
        self.seed = None if seed is None else int(seed)

    @staticmethod
    def compute_fan_in(shape) -> int:
        """Fan-in of a Dense, Conv or recurrent kernel of ``shape`` (see the class docstring)."""
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise ValueError(
                f"Cannot infer the fan-in of a weight of shape {shape!r} (a bias?); "
                "pass PyTorchDefaultUniform(fan_in=...) explicitly."
            )
        return int(np.prod(shape[:-1]))

    def bound(self, shape) -> float:
        """The half-width 1/sqrt(fan_in) of the distribution for a weight of ``shape``."""
        fan_in = self.fan_in if self.fan_in is not None else self.compute_fan_in(shape)
        return float(1.0 / np.sqrt(fan_in))

    def __call__(self, shape, dtype=None, **kwargs):
        limit = self.bound(shape)
        # Delegating keeps the Keras 3 / tf-keras seeding semantics (same seed → same values).
        return keras.initializers.RandomUniform(-limit, limit, seed=self.seed)(shape, dtype=dtype)

    def get_config(self):
        return {"fan_in": self.fan_in, "seed": self.seed}


# tf-keras' legacy HDF5 loader looks initializers up by bare class name, not by the
# registered "dropnet_tf>PyTorchDefaultUniform"; make that name known as well.
keras.utils.get_custom_objects().setdefault("PyTorchDefaultUniform", PyTorchDefaultUniform)


# --------------------------------------------------------------------------------------------
# Argument checking
# --------------------------------------------------------------------------------------------


def resolve_init(init):
    """``init`` → a canonical name from INIT_OPTIONS, or a Keras initializer instance."""
    if isinstance(init, keras.initializers.Initializer):
        return init
    if not isinstance(init, str):
        raise ValueError(
            f"init must be one of {', '.join(INIT_OPTIONS)} (aliases {', '.join(INIT_ALIASES)}) "
            f"or a keras.initializers.Initializer instance, got {init!r}."
        )
    key = init.strip().lower().replace("-", "_")
    key = INIT_ALIASES.get(key, key)
    if key not in INIT_OPTIONS:
        raise ValueError(
            f"Unknown init {init!r}; choose one of {', '.join(INIT_OPTIONS)} "
            f"(aliases: {', '.join(f'{a}={n}' for a, n in INIT_ALIASES.items())}) "
            "or pass a keras.initializers.Initializer instance."
        )
    return key


def check_masked(masked) -> bool:
    if not isinstance(masked, (bool, np.bool_)):
        raise ValueError(f"masked must be True or False, got {masked!r}.")
    return bool(masked)


def check_shape(input_shape, *, rank: int, what: str, min_size: int = 1) -> tuple[int, ...]:
    """Validate ``input_shape``: ``rank`` positive ints; the first two at least ``min_size``."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be a tuple of positive integers, got {input_shape!r}.") from None
    if not shape or any(not is_int(d) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be a tuple of positive integers, got {input_shape!r}.")
    shape = tuple(int(d) for d in shape)
    if rank and len(shape) != rank:
        raise ValueError(f"input_shape must be {what}, got {input_shape!r}.")
    if min_size > 1 and (shape[0] < min_size or shape[1] < min_size):
        raise ValueError(
            f"input_shape {input_shape!r} is too small for this model: height and width must "
            f"be at least {min_size}."
        )
    return shape


def check_stride(value, what: str) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


# --------------------------------------------------------------------------------------------
# Layer factory: initialisers, seeds, masked or plain classes
# --------------------------------------------------------------------------------------------

TF_BN = dict(momentum=0.99, epsilon=1e-3)  # TF 1 / Keras defaults, as in SNIP's code
TORCH_BN = dict(momentum=0.9, epsilon=1e-5)  # PyTorch's BatchNorm2d (momentum 0.1 there)


class LayerFactory:
    """Creates the layers of one model: one fresh (seeded) initializer per weight tensor."""

    def __init__(self, init, seed, masked, bn=TF_BN):
        self.init = resolve_init(init)
        self.seed = check_seed(seed)
        self.masked = check_masked(masked)
        self.bn_kwargs = dict(bn)
        self.count = 0
        self.dense_cls = MaskedDense if self.masked else keras.layers.Dense
        self.conv_cls = MaskedConv2D if self.masked else keras.layers.Conv2D
        self.lstm_cls = MaskedLSTM if self.masked else keras.layers.LSTM
        self.gru_cls = MaskedGRU if self.masked else keras.layers.GRU

    # -- initializers -----------------------------------------------------------------------

    def _next_seed(self):
        self.count += 1
        return None if self.seed is None else derive_layer_seed(self.seed, self.count)

    def _from_template(self):
        config = dict(self.init.get_config())
        if "seed" in config:
            config["seed"] = self._next_seed()
        return type(self.init).from_config(config)

    def kernel(self, fan_in: int | None = None):
        """Initializer of a Dense/Conv kernel or an RNN input kernel."""
        if not isinstance(self.init, str):
            return self._from_template()
        seed = self._next_seed()
        if self.init in ("glorot_uniform", "keras_default"):
            return keras.initializers.GlorotUniform(seed=seed)
        if self.init == "he_normal":
            return keras.initializers.HeNormal(seed=seed)
        if self.init == "random_normal":
            return keras.initializers.RandomNormal(mean=0.0, stddev=NORMAL_INIT_STDDEV, seed=seed)
        if self.init == "truncated_normal":
            return keras.initializers.TruncatedNormal(mean=0.0, stddev=NORMAL_INIT_STDDEV, seed=seed)
        if self.init == "tf1_variance_scaling":
            # SNIP's public code (network.py, get_initializer('vs')): TF 1's
            # tf.variance_scaling_initializer() with its defaults, scale 1, mode fan_in, a
            # normal truncated at two standard deviations and widened by 1/0.8796 to keep the
            # variance 1/fan_in: Keras' VarianceScaling with these arguments (LeCun normal).
            return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal",
                                                      seed=seed)
        return PyTorchDefaultUniform(fan_in=fan_in, seed=seed)  # pytorch_default

    def recurrent(self, units: int):
        if self.init == "keras_default":
            return keras.initializers.Orthogonal(seed=self._next_seed())
        # torch.nn.LSTM/GRU: bound 1/sqrt(units), which is also the recurrent kernel's fan-in.
        return self.kernel(fan_in=units if self.init == "pytorch_default" else None)

    def bias(self, fan_in: int):
        if self.init == "pytorch_default":
            return PyTorchDefaultUniform(fan_in=fan_in, seed=self._next_seed())
        return "zeros"

    # -- layers -----------------------------------------------------------------------------

    def dense(self, x, units: int, name: str, activation=None):
        fan_in = int(x.shape[-1])
        return self.dense_cls(
            units,
            activation=activation,
            kernel_initializer=self.kernel(),
            bias_initializer=self.bias(fan_in),
            name=name,
        )(x)

    def conv(self, x, filters: int, kernel_size: int, name: str, strides: int = 1,
             padding: str = "same", use_bias: bool = True, activation=None):
        fan_in = kernel_size * kernel_size * int(x.shape[-1])
        return self.conv_cls(
            filters,
            (kernel_size, kernel_size),
            strides=(strides, strides),
            padding=padding,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=self.kernel(),
            bias_initializer=self.bias(fan_in) if use_bias else "zeros",
            name=name,
        )(x)

    def recurrent_layer(self, x, cell: str, units: int, name: str):
        torch_style = self.init == "pytorch_default"
        kwargs = dict(
            kernel_initializer=self.kernel(fan_in=units if torch_style else None),
            recurrent_initializer=self.recurrent(units),
            bias_initializer=self.bias(units),
            name=name,
        )
        if cell == "lstm":
            # PyTorch has no forget-gate bias of one; SNIP's TF 1 cells and Keras do.
            return self.lstm_cls(units, unit_forget_bias=not torch_style, **kwargs)(x)
        # reset_after=False: the GRU of Cho et al. (2014) and of TF 1's GRUCell, one bias per
        # gate; it is the variant that reproduces SNIP's counts (see gru_s).
        return self.gru_cls(units, reset_after=False, **kwargs)(x)

    def bn(self, x, name: str):
        return keras.layers.BatchNormalization(name=name, **self.bn_kwargs)(x)

    def relu(self, x, name: str):
        return keras.layers.ReLU(name=name)(x)

    def predictions(self, x, num_classes: int):
        return self.dense(x, num_classes, "predictions", activation="softmax")


__all__ = [
    "is_int",
    "check_num_classes",
    "check_seed",
    "check_shape",
    "check_stride",
    "check_masked",
    "derive_layer_seed",
    "NORMAL_INIT_STDDEV",
    "INIT_OPTIONS",
    "INIT_ALIASES",
    "PyTorchDefaultUniform",
    "resolve_init",
    "TF_BN",
    "TORCH_BN",
    "LayerFactory",
]
