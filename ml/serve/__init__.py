"""Serving the champion model: batch recommendation lists and the online model (the promotion and serving work fills it)."""
