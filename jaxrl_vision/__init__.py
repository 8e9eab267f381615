"""jaxrl_vision: functional JAX library for vision-based robot learning."""

__version__ = "0.1.0"
