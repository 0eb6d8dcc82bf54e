"""Degeneracy, not vanishing gradients: deep linear nets, spectra, and the synapse RNN."""
