"""The training engines: how a model is trained and evaluated.

Its modules are listed, with what each holds, in the README's Layout section.  Importing
``dropnet_tf.engines`` imports none of them; import the module you need.
"""
