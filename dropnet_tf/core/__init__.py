"""The pruning primitives: the bottom layer, which every other package builds on and which
imports none of them.

Its modules are listed, with what each holds, in the README's Layout section.  Importing
``dropnet_tf.core`` imports none of them; import the module you need.
"""
