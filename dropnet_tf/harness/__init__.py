"""The run harness: resumable grids of runs, their results files, shards, progress and ETA.

Its modules are listed, with what each holds, in the README's Layout section.  Importing
``dropnet_tf.harness`` imports none of them; import the module you need.
"""
