"""The training engines: how a model is trained and evaluated (see the README's Layout).

Importing ``dropnet_tf.engines`` imports none of its modules; import the one you need.
"""
