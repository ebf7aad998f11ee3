"""gen-models: classic generative models in JAX/Flax, built for fast, deterministic, resumable
experiments."""
