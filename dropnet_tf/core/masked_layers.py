"""Keras layers whose weights carry a binary mask: the mechanism of weight-level pruning.

A masked layer is the Keras layer it subclasses plus one non-trainable ``<weight>_mask``
variable per pruned weight (``kernel``; ``recurrent_kernel`` for LSTM/GRU; optionally
``bias``, and ``gamma``/``beta`` for BatchNormalization).  Two things keep a pruned weight
exactly zero:

* setting a mask writes ``weight ⊙ mask`` into the weight itself, so the forward pass
  reads exact zeros (this also covers fused kernels such as cuDNN LSTM/GRU, which read
  the variables directly and could not be made to multiply by a mask);
* every masked weight carries a :class:`WeightMaskConstraint`, which every Keras optimizer
  (Keras 3 and tf-keras) applies right after its update inside the same step.  Whatever
  the update — momentum, Nesterov, Adam, decoupled weight decay, an L2 regulariser — the
  pruned entries are zero again before the next forward pass, also with
  ``steps_per_execution > 1`` and in custom loops that call ``optimizer.apply_gradients``.

The masks are ordinary layer weights, so ``model.save("m.keras")`` /
``keras.models.load_model`` restore them, and the classes are registered for
serialisation under the ``dropnet_tf`` package.  Biases and BatchNorm parameters are not
pruned unless asked (``prune_bias=True``; :class:`MaskedBatchNormalization`): the papers
this package reproduces (SNIP, the foresight-pruning thesis) prune weights only.
"""

from __future__ import annotations

from dropnet_tf.core.backend import KERAS_MAJOR, keras, register_serializable, tf


@register_serializable(package="dropnet_tf")
class WeightMaskConstraint(keras.constraints.Constraint):
    """``w ← mask ⊙ inner(w)``: re-applies a weight mask after every optimizer update.

    ``inner`` is the constraint the user gave the layer (e.g. ``max_norm``), applied
    first so that it keeps working.  The mask variable is attached by the layer when it
    is built; it is never serialised here (the layer saves it as a weight).
    """

    def __init__(self, inner=None):
        self.inner = keras.constraints.get(inner) if inner is not None else None
        self.mask = None

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        if self.mask is None:
            return w
        return w * tf.cast(self.mask, w.dtype)

    def get_config(self):
        return {"inner": keras.constraints.serialize(self.inner) if self.inner is not None else None}


def _set_constraint(variable, constraint) -> None:
    # Keras 3 variables have a public setter; tf.Variable (tf-keras) keeps it private.
    try:
        variable.constraint = constraint
    except AttributeError:
        variable._constraint = constraint


class WeightMaskMixin:
    """Adds one non-trainable mask per pruned weight; see the module docstring.

    Subclasses name the weights to mask in ``masked_weight_names`` and may override
    :meth:`_weight_owner` when the weights live on a sub-layer (RNN cells).
    """

    masked_weight_names: tuple[str, ...] = ("kernel",)
    bias_weight_names: tuple[str, ...] = ("bias",)

    def __init__(self, *args, prune_bias: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(prune_bias, bool):
            raise TypeError(f"prune_bias must be True or False, got {prune_bias!r}.")
        self.prune_bias = prune_bias
        self._weight_masks: dict[str, object] = {}

    def _weight_owner(self):
        return self

    def _pruned_names(self) -> tuple[str, ...]:
        owner = self._weight_owner()
        names = list(self.masked_weight_names)
        if self.prune_bias:
            names += [n for n in self.bias_weight_names if getattr(owner, n, None) is not None]
        return tuple(n for n in names if getattr(owner, n, None) is not None)

    def build(self, input_shape):
        super().build(input_shape)
        self._add_weight_masks()

    def _add_weight_masks(self) -> None:
        owner = self._weight_owner()
        for name in self._pruned_names():
            variable = getattr(owner, name)
            mask = self.add_weight(
                name=f"{name}_mask",
                shape=tuple(variable.shape),
                initializer="ones",
                trainable=False,
                dtype="float32",
            )
            self._weight_masks[name] = mask
            inner = getattr(variable, "constraint", None)
            if isinstance(inner, WeightMaskConstraint):
                inner = inner.inner
            constraint = WeightMaskConstraint(inner)
            constraint.mask = mask
            _set_constraint(variable, constraint)

    # -- public accessors --------------------------------------------------------------

    @property
    def weight_masks(self) -> dict[str, object]:
        """``{weight name: mask variable}`` (empty until the layer is built)."""
        return dict(self._weight_masks)

    def masked_weight(self, name: str):
        """The variable that mask ``name`` covers."""
        if name not in self._weight_masks:
            raise KeyError(f"Layer '{self.name}' has no mask for '{name}'; it masks {sorted(self._weight_masks)}.")
        return getattr(self._weight_owner(), name)

    def apply_weight_masks(self) -> None:
        """Write ``weight ⊙ mask`` into every masked weight (after setting masks)."""
        for name, mask in self._weight_masks.items():
            variable = self.masked_weight(name)
            variable.assign(variable * tf.cast(mask, variable.dtype))

    # Keras 3's Dense saves a fixed list (kernel, bias) for its quantisation modes, which
    # would leave the masks out; a masked layer is never quantised, so the generic
    # Layer implementation (every own variable, in creation order) is the right one.
    def _base_skips_masks(self) -> bool:
        base = super().save_own_variables
        return KERAS_MAJOR >= 3 and getattr(base, "__func__", None) is not keras.layers.Layer.save_own_variables

    def save_own_variables(self, store):
        if self._base_skips_masks():
            return keras.layers.Layer.save_own_variables(self, store)
        return super().save_own_variables(store)

    def load_own_variables(self, store):
        if self._base_skips_masks():
            return keras.layers.Layer.load_own_variables(self, store)
        return super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config["prune_bias"] = self.prune_bias
        # The mask constraint is an implementation detail: save the user's own constraint.
        for key in ("kernel_constraint", "recurrent_constraint", "bias_constraint"):
            value = config.get(key)
            if isinstance(value, dict) and value.get("class_name") == "WeightMaskConstraint":
                config[key] = value.get("config", {}).get("inner")
        return config


@register_serializable(package="dropnet_tf")
class MaskedDense(WeightMaskMixin, keras.layers.Dense):
    """``keras.layers.Dense`` with a binary mask over its kernel (and optionally its bias)."""


@register_serializable(package="dropnet_tf")
class MaskedConv1D(WeightMaskMixin, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` with a binary mask over its kernel (and optionally its bias)."""


@register_serializable(package="dropnet_tf")
class MaskedConv2D(WeightMaskMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a binary mask over its kernel (and optionally its bias)."""


@register_serializable(package="dropnet_tf")
class MaskedDepthwiseConv2D(WeightMaskMixin, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` with a binary mask over its depthwise kernel."""

    # Keras 3 calls the depthwise kernel `kernel`; tf-keras calls it `depthwise_kernel`.
    masked_weight_names = ("kernel",) if KERAS_MAJOR >= 3 else ("depthwise_kernel",)


class _RecurrentMaskMixin(WeightMaskMixin):
    masked_weight_names = ("kernel", "recurrent_kernel")

    def _weight_owner(self):
        return self.cell

    if KERAS_MAJOR >= 3:
        # Keras 3 matches build() argument names against call() (`sequences`).
        def build(self, sequences_shape, initial_state_shape=None):
            keras.layers.RNN.build(self, sequences_shape, initial_state_shape)
            self._add_weight_masks()


@register_serializable(package="dropnet_tf")
class MaskedLSTM(_RecurrentMaskMixin, keras.layers.LSTM):
    """``keras.layers.LSTM`` with masks over its input and recurrent kernels (SNIP's LSTM-s/b)."""


@register_serializable(package="dropnet_tf")
class MaskedGRU(_RecurrentMaskMixin, keras.layers.GRU):
    """``keras.layers.GRU`` with masks over its input and recurrent kernels (SNIP's GRU-s/b)."""


@register_serializable(package="dropnet_tf")
class MaskedBatchNormalization(WeightMaskMixin, keras.layers.BatchNormalization):
    """BatchNormalization with masks over its scale and offset, for ``prune_batchnorm=True``.

    Not used by default: SNIP and the thesis leave normalisation parameters unpruned.
    """

    masked_weight_names = ("gamma", "beta")
    bias_weight_names = ()


#: Keras layer class → its masked twin, in the order subclasses must be matched.
MASKED_TWINS = {
    keras.layers.DepthwiseConv2D: MaskedDepthwiseConv2D,
    keras.layers.Conv1D: MaskedConv1D,
    keras.layers.Conv2D: MaskedConv2D,
    keras.layers.Dense: MaskedDense,
    keras.layers.LSTM: MaskedLSTM,
    keras.layers.GRU: MaskedGRU,
}

MASKED_LAYER_TYPES = (
    MaskedDense,
    MaskedConv1D,
    MaskedConv2D,
    MaskedDepthwiseConv2D,
    MaskedLSTM,
    MaskedGRU,
    MaskedBatchNormalization,
)
