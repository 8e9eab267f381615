"""Optimizer pieces (optax GradientTransformations) beyond stock optax."""
