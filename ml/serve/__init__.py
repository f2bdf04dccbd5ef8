"""Serving the champion model (the registered model's ``champion`` alias).

* :mod:`ml.serve.batch`: the nightly lists — which customers are active, their top-k items in both views
  from the served pyfunc model, written as one Parquet partition per as-of date
  (``<paths.serving>/date=YYYY-MM-DD/recommendations.parquet``).
* :mod:`ml.serve.online`: the online model server (``mlflow models serve`` on the champion), with the
  request and answer schema.

The served model itself (one pyfunc for both views, with the fallbacks for unknown customers) lives in
:mod:`ml.tracking.pyfunc`.
"""
