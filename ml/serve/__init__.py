"""Serving the champion model: batch recommendation lists and the online model.

Empty until the promotion and serving work fills it; ``ml.tracking`` holds the MLflow pyfunc wrapper meanwhile.
"""
