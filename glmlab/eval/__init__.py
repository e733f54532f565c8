"""The evaluation suite: held-out items, their formats, scoring and metrics."""
