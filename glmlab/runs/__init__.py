"""Runs: the run-directory format, one run end to end, sweep naming, provenance, the
tracker fan-out and device memory."""
