"""The shared harness of the benchmarks: nothing here is run on its own.

The data sets, the nets, the strategies by name, the modAL loop with its resumable run
store, the metrics and the report writers, and the helpers of single scripts (their
report writers, arms and measurements). The scripts a user runs are the modules of
``benchmarks/`` itself; the research records are in ``benchmarks/research/``. The
harness imports neither (``tests/test_benchmarks_layout.py``).
"""
