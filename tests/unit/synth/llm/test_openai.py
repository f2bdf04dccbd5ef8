"""The OpenAI-compatible backend against test doubles: retries with backoff, a clear error when the
server is unreachable, no retry on refusals, bounded concurrency, and validated structured answers."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pandas as pd
import pytest

from ml.synth.candidates import Candidate
from ml.synth.expansion import UserTask, parse_choices, propose_by_choice
from ml.synth.llm.base import Generator, Prompt
from ml.synth.llm.errors import GeneratorError, GeneratorUnavailableError
from ml.synth.llm.factory import make_generator
from ml.synth.llm.openai_http import OpenAIGenerator
from tests.support.ports import free_port
from tests.support.synth import sample_settings


def completion(text: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


class FakeServer:
    """An httpx transport that answers from a script of (status, body) and records requests."""

    def __init__(self, script, delay: float = 0.0):
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            status, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)


def client(server: FakeServer, sleeps: list, **kwargs) -> OpenAIGenerator:
    options = dict(
        base_url="http://llm.test/v1",
        model="m",
        max_retries=3,
        backoff_s=0.5,
        transport=httpx.MockTransport(server),
        sleep=sleeps.append,
    )
    options.update(kwargs)
    return OpenAIGenerator(**options)


def test_backend_implements_the_generator_contract():
    gen = OpenAIGenerator(
        "http://llm.test/v1", "m", transport=httpx.MockTransport(FakeServer([(200, completion("x"))]))
    )
    assert isinstance(gen, Generator) and gen.name == "openai:m" and not gen.supports_scoring


def test_server_errors_are_retried_with_exponential_backoff_then_succeed():
    server, sleeps = FakeServer([(500, "boom"), (503, "busy"), (200, completion('{"choices": [2]}'))]), []
    gen = client(server, sleeps)
    assert gen.generate([Prompt("hi")], max_tokens=8) == ['{"choices": [2]}']
    assert len(server.requests) == 3 and sleeps == [0.5, 1.0]
    body = json.loads(server.requests[-1].content)
    assert (
        body["model"] == "m" and body["messages"][-1] == {"role": "user", "content": "hi"} and body["max_tokens"] == 8
    )


def test_persistent_failure_raises_unavailable_naming_url_and_cause():
    server, sleeps = FakeServer([(500, "still broken")]), []
    with pytest.raises(
        GeneratorUnavailableError, match=r"llm.test/v1/chat/completions unavailable after 4 attempt\(s\): HTTP 500"
    ) as err:
        client(server, sleeps).generate([Prompt("hi")], max_tokens=8)
    assert err.value.attempts == 4 and sleeps == [0.5, 1.0, 2.0]


def test_refusal_is_not_retried():
    server, sleeps = FakeServer([(401, {"error": "bad key"})]), []
    with pytest.raises(GeneratorError, match="HTTP 401") as err:
        client(server, sleeps).generate([Prompt("hi")], max_tokens=8)
    assert not isinstance(err.value, GeneratorUnavailableError) and len(server.requests) == 1 and sleeps == []


def test_connection_refused_is_retried_then_reported_unavailable():
    sleeps: list = []
    gen = OpenAIGenerator(
        f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=2, backoff_s=0.01, timeout_s=2, sleep=sleeps.append
    )
    with pytest.raises(GeneratorUnavailableError, match="ConnectError"):
        gen.generate([Prompt("hi")], max_tokens=4)
    assert gen.requests == 3 and len(sleeps) == 2


def test_concurrency_is_bounded():
    server = FakeServer([(200, completion("ok"))], delay=0.05)
    gen = client(server, [], concurrency=3)
    assert gen.generate([Prompt(str(i)) for i in range(12)], max_tokens=2) == ["ok"] * 12
    assert server.max_active == 3


def test_api_key_comes_from_the_configured_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SYNTH_KEY", "sk-test")
    settings = sample_settings(
        tmp_path, backend="openai", model="served", api_key_env="MY_SYNTH_KEY", base_url="http://llm.test/v1"
    )
    server = FakeServer([(200, completion("ok"))])
    gen = OpenAIGenerator.from_settings(settings, transport=httpx.MockTransport(server))
    gen.generate([Prompt("hi")], max_tokens=2)
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_factory_builds_the_openai_backend_and_needs_a_model_name(tmp_path):
    assert make_generator(sample_settings(tmp_path, backend="openai", model="x")).name == "openai:x"
    with pytest.raises(GeneratorError, match="model name"):
        make_generator(sample_settings(tmp_path, backend="openai", model=""))


CANDIDATES = [Candidate(f"i{k}", f"ITEM {k}", "copurchase") for k in range(1, 6)]


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"choices": [2, 5]}', ["i2", "i5"]),
        ('```json\n{"choices": [1]}\n```', ["i1"]),
        ('Sure! {"choices": ["i3", 9, "nope"]}', ["i3", None, None]),
        ('{"choices": ["4"]}', ["i4"]),
    ],
)
def test_choice_answers_map_onto_candidates_or_none(text, expected):
    picks = parse_choices(text, CANDIDATES)
    assert [p.item_id if p else None for p in picks] == expected


@pytest.mark.parametrize("text", ["I think item 2", '{"picks": [1]}', '{"choices": "2"}', ""])
def test_unparseable_choice_answers_raise(text):
    with pytest.raises(ValueError):
        parse_choices(text, CANDIDATES)


class ScriptedGenerator:
    """A generating backend that returns fixed answers."""

    name = "fake:scripted"
    supports_scoring = False

    def __init__(self, answers):
        self.answers = answers
        self.prompts = []

    def generate(self, prompts, max_tokens, stop=()):
        self.prompts += list(prompts)
        return self.answers[: len(prompts)]

    def score(self, prefix, continuations):
        raise NotImplementedError

    def close(self):
        pass


def test_invalid_structured_answers_are_counted_never_guessed():
    ts = pd.Timestamp("2011-07-01 10:00")
    tasks = [
        UserTask(f"u{k}", [{"date": "2011-03-02", "titles": ["PARTY BUNTING"]}], ["h"], ts, list(CANDIDATES))
        for k in range(3)
    ]
    gen = ScriptedGenerator(['{"choices": [1, 42]}', "no json here", '{"choices": [2, 3, 4, 5]}'])
    frame = propose_by_choice(tasks, gen, n_picks=3, seed=7)
    reasons = frame["reject_reason"].astype(object).where(frame["reject_reason"].notna(), None)
    by_user = reasons.groupby(frame["user_id"]).apply(list).to_dict()
    assert by_user["u0"] == [None, "not_a_candidate"]
    assert by_user["u1"] == ["invalid_answer"]
    assert by_user["u2"] == [None, None, None, None]  # the 4th is over the cap: flagged later by filter_proposals
    valid = frame.dropna(subset=["item_id"])
    assert set(valid["item_id"]) <= {c.item_id for c in CANDIDATES}
    assert frame.loc[frame["user_id"] == "u2", "score"].tolist() == [1.0, 0.5, pytest.approx(1 / 3), 0.25]
