"""The fused executor: a group of same-structure trials trained as one vmapped XLA program (JAX)."""
