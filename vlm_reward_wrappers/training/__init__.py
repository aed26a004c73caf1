"""Training reward models: deterministic batches, the trainer, backbone pretraining, multi-process runs."""
