"""pytest-benchmark suite comparing mmkv with other embedded key-value stores.

Run it from the repository root with ``python -m pytest benchmarks/``; see
``benchmarks/README.md`` for the method.
"""
