"""Developer tools: ``bench`` (``learnsyn bench``), ``rollout_bench`` (fast vs reference
rollouts), ``gpu_checks`` (``python -m learnsyn.tools.gpu_checks``) and ``refine_linear`` (a
learned run's linearization refined along its modes into a stronger linear synapse)."""
