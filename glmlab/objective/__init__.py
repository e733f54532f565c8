"""Training objectives: the GLM sample builder and objective, the MLM and CLM baselines, and
the span-statistics measurement behind docs/FIDELITY.md."""
