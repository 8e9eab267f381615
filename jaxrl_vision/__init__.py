"""jaxrl_vision: functional JAX library for vision-based robot learning."""

__version__ = "0.1.0"

# Before any program is traced: batched Cholesky and triangular solves on
# XLA:CPU that cannot deadlock (jaxlib 0.10.2; see cpu_lapack's docstring).
from jaxrl_vision.distributed import cpu_lapack as _cpu_lapack

_cpu_lapack.install()
