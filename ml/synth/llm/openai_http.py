"""The OpenAI-compatible HTTP backend (vLLM, Ollama, llama.cpp server, ``transformers serve``, hosted APIs).

Requests go to ``<base_url>/chat/completions`` (chat prompts) or ``<base_url>/completions`` (raw
prompts) with bounded concurrency. Connection errors, timeouts, 429 and 5xx answers are retried
with exponential backoff; when every attempt failed the run stops with
:class:`~ml.synth.llm.errors.GeneratorUnavailableError`. Other 4xx answers (bad key, bad request) are
not retried. The API key comes from an environment variable or, where Airflow is installed and
the connection exists, from an Airflow connection.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from ml.config import Settings
from ml.synth.llm.base import Prompt, cut_at_stop
from ml.synth.llm.errors import GeneratorError, GeneratorUnavailableError

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


def airflow_connection(conn_id: str) -> tuple[str | None, str | None]:
    """``(api_key, base_url)`` from an Airflow connection, or ``(None, None)`` without Airflow or the connection.

    The key is the connection's password; the base URL its host (with schema and port, if given).
    """
    try:
        from airflow.sdk import BaseHook  # Airflow 3
    except Exception:  # noqa: BLE001 - Airflow not installed or not configured
        return None, None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - a missing connection raises a provider-specific error
        log.info("Airflow connection %r not usable (%s); using the environment", conn_id, exc)
        return None, None
    base = None
    if conn.host:
        base = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
        if conn.port:
            base = f"{base.rstrip('/')}:{conn.port}"
    return conn.password or None, base


class OpenAIGenerator:
    """Client of an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server knows.
        api_key: bearer token (None for local servers without auth).
        timeout_s: per-request timeout.
        max_retries: retries after the first attempt.
        backoff_s: first retry delay, doubled for each further retry (capped at 30 s).
        concurrency: requests in flight at once.
        temperature: sampling temperature (0: greedy where the server honours it).
        seed: sent with every request, for servers that support seeded sampling.
        json_mode: ask for ``response_format={"type": "json_object"}``.
        transport: an httpx transport (tests pass a fake server here).
        sleep: the function used to wait between retries (tests pass a recorder).
    """

    supports_scoring = False

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        seed: int | None = None,
        json_mode: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not model:
            raise GeneratorError("the openai backend needs a model name (settings synth.model)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = max(1, concurrency)
        self.temperature = temperature
        self.seed = seed
        self.json_mode = json_mode
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers, transport=transport)
        self.name = f"openai:{model}"
        self.requests = 0  # attempts made, retries included
        self.retries = 0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> OpenAIGenerator:
        """Build from ``settings.synth``; the key comes from the Airflow connection or ``api_key_env``."""
        s = settings.synth
        key, base = (None, None)
        if s.airflow_conn_id:
            key, base = airflow_connection(s.airflow_conn_id)
        key = key or os.environ.get(s.api_key_env) or None
        kwargs = dict(
            base_url=base or s.base_url,
            model=s.model,
            api_key=key,
            timeout_s=s.timeout_s,
            max_retries=s.max_retries,
            backoff_s=s.backoff_s,
            concurrency=s.concurrency,
            temperature=s.temperature,
            seed=s.seed,
            json_mode=s.json_mode,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    def score(self, prefix: str, continuations: Sequence[str]) -> np.ndarray:
        """Not offered: OpenAI-compatible servers do not agree on prompt log-probabilities."""
        raise NotImplementedError("the openai backend does not score; use structured generation")

    def generate(self, prompts: Sequence[Prompt], max_tokens: int, stop: Sequence[str] = ()) -> list[str]:
        """One answer per prompt, ``concurrency`` requests at a time.

        Raises:
            GeneratorUnavailableError: a request failed on every attempt.
            GeneratorError: the server refused a request (4xx other than 408/409/425/429).
        """
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._answer(p, max_tokens, stop), prompts))

    def _answer(self, prompt: Prompt, max_tokens: int, stop: Sequence[str]) -> str:
        body: dict = {"model": self.model, "max_tokens": max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        if stop:
            body["stop"] = list(stop)
        if prompt.chat:
            messages = ([{"role": "system", "content": prompt.system}] if prompt.system else []) + [
                {"role": "user", "content": prompt.text}
            ]
            body["messages"] = messages
            if self.json_mode:
                body["response_format"] = {"type": "json_object"}
            data = self._post("/chat/completions", body)
            text = ((data.get("choices") or [{}])[0].get("message") or {}).get("content")
        else:
            body["prompt"] = prompt.text
            data = self._post("/completions", body)
            text = (data.get("choices") or [{}])[0].get("text")
        return cut_at_stop(text or "", stop).strip()

    def _post(self, path: str, body: dict) -> dict:
        url = f"{self.base_url}{path}"
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                self.retries += 1
                self._sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1)))
            self.requests += 1
            try:
                response = self._client.post(path, json=body)
            except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise GeneratorError(f"{url} refused the request: HTTP {response.status_code}: {response.text[:300]}")
            try:
                return response.json()
            except ValueError as exc:
                raise GeneratorError(f"{url} answered with non-JSON: {response.text[:200]!r}") from exc
        raise GeneratorUnavailableError(url, attempts, last)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
