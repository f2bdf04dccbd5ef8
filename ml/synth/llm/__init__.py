"""The language-model client layer: what synthesis asks of a model, and the backends that answer.

``base`` (``Prompt``, the ``Generator`` protocol, answer parsing), ``errors``, ``embedded`` (a local
causal LM run with transformers; SmolLM2-135M-Instruct by default, from ``model_cache``),
``openai_http`` (any OpenAI-compatible server) and ``factory`` (the one place that builds a
generator from settings). Nothing here knows about shops, users or items.
"""
