"""The machinery every method package shares; it imports nothing from them.

=====================  ==========================================================
``backend``            the one place Keras / TensorFlow are imported (keras, tf)
``layers``             MaskLayer, the per-unit binary mask
``masking``            add_masks / get_masks / set_masks / mask_layers
``graph``              LayerGraph: a model's layers and neighbours, from its public
                       config, and the helpers that edit such a config
``selection``          global vs layer-wise selection of units and weights
``training``           GraphTrainer: many steps per call, driving Keras callbacks
``progress``           EpochLine, CycleCallback hooks, TensorBoardLogger (scalars per
                       epoch and per cycle), RunScalars (per run)
``eta``                the grid ETA every family prints: RateEstimator, grid_line,
                       RunsETA (one run per cell), format_duration
``distribute``         tf.distribute: strategy checks, scope, clone_in_scope (issue 16)
``distributed_training``  DistributedTrainer: the graph trainer's loop under a strategy
``counting``           count_parameters / count_flops (multiply-adds of Dense and Conv)
``caching``            PerModelCache of traced functions; tf_variables
``validation``         argument checks with uniform messages
``io``                 atomic writes, NPZ state, JSON conversion
``results``            ResultsFile (JSON lines), flatten_record, write_csv
``grid``               RunGrid: one resumable grid of keyed cells over a results file
``shards``             a grid's shard per process (--shard I/N) and the merge of the shards
``aliases``            the former module paths (dropnet_tf.dropnet.iterative ...) as aliases
=====================  ==========================================================

Importing ``dropnet_tf.core`` imports none of these; import the module you need.
"""
