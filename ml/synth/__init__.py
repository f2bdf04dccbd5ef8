"""Language-model synthesis of training data, grounded in the real catalog and gated before use.

What the pipeline calls (heavy imports stay inside these modules)::

    from ml.synth.pipeline import synthesize
    from ml.synth.quality import gate_synthetic

    result = synthesize(data, catalog, settings)            # SynthResult: frames + report
    result.save(folder)                                     # parquet files + synth_report.json
    gate = gate_synthetic(result, data, catalog, settings)  # raises GateFailedError with reasons

The synthesis tasks sit on top of the model client layer ``ml.synth.llm`` (generators, model
cache, factory) and never the other way round: ``prompts`` (+ ``prompts/*.jinja2``, versioned),
``candidates`` (co-purchase and title-embedding neighbours), ``expansion`` (sparse-user next
purchases), ``enrichment`` and ``categories`` (item attributes and their title checks),
``quality`` (filters, distribution checks, the gate), ``evaluation`` (choice accuracy
on held-out real purchases), ``adaptation`` (optional fine-tuning of the embedded model on the
shop's own sequences: a task, since it trains on the expansion prompts).
"""
