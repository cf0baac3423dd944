"""``python -m reference_arch.cli``: the same as the ``reference-arch`` console script."""

from reference_arch.cli import run

run()
