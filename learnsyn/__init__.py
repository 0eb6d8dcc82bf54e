"""learnsyn: meta-trained synapses against tuned hand-crafted baselines."""
