"""Developer tools: ``bench`` (``learnsyn bench``), ``rollout_bench`` (fast vs reference
rollouts) and ``gpu_checks`` (``python -m learnsyn.tools.gpu_checks``)."""
