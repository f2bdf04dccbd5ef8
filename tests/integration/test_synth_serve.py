"""The OpenAI-compatible backend for real: `transformers serve` runs the converted embedded model on
127.0.0.1 (a free port), and synthesis through it yields only validated, catalog-grounded rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ml import columns as C
from ml.synth.llm.base import Prompt
from ml.synth.llm.openai_http import OpenAIGenerator
from ml.synth.pipeline import synthesize
from ml.synth.quality import eligible_items
from tests.support.ports import free_port
from tests.support.synth import bundled_sample, model_folder, sample_settings

pytestmark = pytest.mark.slow
STARTUP_S = 90


@pytest.fixture(scope="module")
def server():
    """`transformers serve <converted SmolLM2>` on 127.0.0.1; yields the base URL and the model name."""
    folder = model_folder()
    exe = Path(sys.executable).with_name("transformers")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        str(exe),
        "serve",
        str(folder),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--default-seed",
        "0",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not healthy after {STARTUP_S} s")
            time.sleep(0.5)
        yield f"{base}/v1", str(folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_round_trip_through_transformers_serve(server):
    base_url, model = server
    gen = OpenAIGenerator(base_url, model, timeout_s=60, max_retries=1, concurrency=2, seed=0)
    answers = gen.generate([Prompt('Answer with JSON only: {"choices": [1]}'), Prompt("Say hi.")], max_tokens=8)
    assert len(answers) == 2 and all(isinstance(a, str) and a for a in answers)
    assert gen.retries == 0


def test_structured_choices_from_the_server_are_validated_and_counted(server, tmp_path):
    base_url, model = server
    data, catalog = bundled_sample()
    settings = sample_settings(
        tmp_path,
        backend="openai",
        model=model,
        base_url=base_url,
        max_users=2,
        enrich_max_items=1,
        n_copurchase=4,
        n_text=4,
        concurrency=2,
        seed=1,
        strategies={"nightly": "expansion"},  # the language model's own picks, through the server
    )
    gen = OpenAIGenerator.from_settings(settings)
    result = synthesize(data, catalog, settings, backend=gen, use_text_neighbours=False)
    counts = result.report["interactions"]
    assert counts["generated"] == len(result.interactions) + len(result.rejected) >= 2
    assert set(result.interactions[C.ITEM]) <= eligible_items(data, catalog)
    assert (result.interactions["generator"] == f"openai:{model}").all()
    assert result.report["prompt_versions"]["interactions"] == "next_purchase_choice@1"
    items = result.report["items"]
    assert items["attempted"] == 1 == items["ok"] + sum(items["rejected"].values())
