"""The run harness: resumable grids of runs, their results files, shards, progress and ETA
(see the README's Layout).

Importing ``dropnet_tf.harness`` imports none of its modules; import the one you need.
"""
