"""Recommendation platform: cleaning, quality gates, synthesis, training, evaluation, serving."""

__version__ = "0.1.0"
