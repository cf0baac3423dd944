"""What the tests (``reference_arch_tests/``) and the benchmarks (``bench/``) share: a tiny real model,
a ``dagster dev`` runner, a scratch Postgres database, scoped environment variables.

Only tests and benchmarks import it; the product never does (``reference_arch_tests/test_layering.py``).
No pytest here: a benchmark runs without it. Heavy libraries load inside the functions that use them.
"""
