"""churnops benchmarks: `make bench` (all groups) or `make bench BENCH=simulate` (one).

``python -m bench [group ...]`` from the project root. One module per group (its
docstring says what it measures); ``harness`` holds what they share: the bench's
environment variables (read there and nowhere else), the measurement of one step in a
fresh child process (so its peak memory, max RSS, is its own), the bench state's settings
and stores, and the printed table. Figures are printed, nothing here asserts a time
(speed is measured, not tested). Data goes to a temporary folder that is deleted
afterwards; ``CHURNOPS_BENCH_CUSTOMERS`` sets the size (default 500,000).
"""
