"""glmlab's benchmarks: ``python benchmarks/<name>.py --help``; results in docs/PERFORMANCE.md."""
