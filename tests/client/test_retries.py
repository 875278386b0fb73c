"""Retries on 429 and 503 (Retry-After honoured, exponential backoff otherwise), against a real HTTP server that
answers as scripted; only reads and predictions are retried unless asked, and both clients behave the same."""

import asyncio
import email.utils
import time

import pytest
from client_support import ScriptedServer

from service.client import AsyncClient, Client, NnserveError, RetryPolicy
from service.client.operations import Answer, predict, retrain, retry_after

PREDICTION = {"model": "iris", "version": 1, "predictions": ["setosa"], "probabilities": [[1.0, 0.0, 0.0]]}
JOB = {"id": "j1", "model": "iris", "status": "queued", "created_at": "2026-01-01T00:00:00Z"}
BUSY = (503, {"Retry-After": "0"}, {"code": 503, "status": "Service Unavailable", "message": "database down"})
FULL = (429, {"Retry-After": "0"}, {"code": 429, "status": "Too Many Requests", "message": "queue full"})
FAST = RetryPolicy(backoff=0.0)  # the scripted server says Retry-After: 0 anyway


def both(url, retry=FAST):
    """The blocking client, then the async one as a blocking function of the same calls."""
    sync = Client(url, retry=retry, timeout=10)

    class Blocking:
        def __getattr__(self, name):
            async def call(*args, **kwargs):
                async with AsyncClient(url, retry=retry, timeout=10) as client:
                    return await getattr(client, name)(*args, **kwargs)

            return lambda *args, **kwargs: asyncio.run(call(*args, **kwargs))

    return [sync, Blocking()]


@pytest.mark.parametrize("kind", [0, 1], ids=["Client", "AsyncClient"])
def test_a_prediction_is_retried_after_503_with_retry_after_then_succeeds(kind):
    with ScriptedServer([BUSY, BUSY, (200, {}, PREDICTION)]) as server:
        result = both(server.url)[kind].predict("iris", [[5.1, 3.5, 1.4, 0.2]])
        assert result.predictions == ["setosa"]
        assert server.requests == [("POST", "/v1/models/iris/predict")] * 3


@pytest.mark.parametrize("kind", [0, 1], ids=["Client", "AsyncClient"])
def test_reads_give_up_after_the_policys_retries(kind):
    with ScriptedServer([BUSY]) as server:
        with pytest.raises(NnserveError) as caught:
            both(server.url, RetryPolicy(retries=2, backoff=0.0))[kind].models()
        assert (caught.value.status, caught.value.message) == (503, "database down")
        assert len(server.requests) == 3


@pytest.mark.parametrize("kind", [0, 1], ids=["Client", "AsyncClient"])
def test_a_retrain_is_not_retried_unless_asked(kind):
    with ScriptedServer([FULL, (202, {}, JOB)]) as server:
        with pytest.raises(NnserveError) as caught:
            both(server.url)[kind].retrain("iris")
        assert caught.value.status == 429 and len(server.requests) == 1
        for call in (lambda c: c.activate("iris", 2), lambda c: c.feedback("iris", []), lambda c: c.cancel("j1")):
            server.answers, server.requests = [BUSY], []
            with pytest.raises(NnserveError):
                call(both(server.url)[kind])
            assert len(server.requests) == 1, server.requests

        server.answers, server.requests = [FULL, (202, {}, JOB)], []
        job = both(server.url, RetryPolicy(backoff=0.0, non_idempotent=True))[kind].retrain("iris")
        assert job.id == "j1" and len(server.requests) == 2


def test_no_retries_and_a_retry_after_beyond_max_wait_raise_at_once():
    with ScriptedServer([BUSY, (200, {}, PREDICTION)]) as server:
        with pytest.raises(NnserveError):
            Client(server.url, retry=RetryPolicy(retries=0)).predict("iris", [[1, 2, 3, 4]])
        assert len(server.requests) == 1
    later = (503, {"Retry-After": "120"}, BUSY[2])
    with ScriptedServer([later, (200, {}, PREDICTION)]) as server:
        with pytest.raises(NnserveError) as caught:
            Client(server.url, retry=RetryPolicy(max_wait=30)).predict("iris", [[1, 2, 3, 4]])
        assert caught.value.status == 503 and len(server.requests) == 1


def test_the_wait_is_retry_after_else_a_doubling_backoff():
    policy = RetryPolicy(retries=4, backoff=0.5, max_wait=3.0)
    call = predict("iris", [[1.0, 2.0, 3.0, 4.0]])

    def wait(status, attempt, **headers):
        return policy.delay(call, Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, b""), attempt)

    assert [wait(503, n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, None]  # doubled, capped, then no more
    assert wait(429, 0, **{"retry_after": "2"}) == 2.0
    assert wait(503, 0, **{"retry_after": "7"}) is None  # longer than max_wait: not waited for
    assert wait(500, 0) is None and wait(200, 0) is None and wait(404, 0) is None
    assert (
        policy.delay(retrain("iris", None, None, "append", "never", None, False, None, None), Answer(503, {}, b""), 0)
        is None
    )
    now = time.time()
    assert retry_after(email.utils.formatdate(now + 2, usegmt=True), now=now) == pytest.approx(2.0, abs=1.0)
    assert retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


@pytest.mark.parametrize("kind", [0, 1], ids=["Client", "AsyncClient"])
def test_a_retry_after_that_is_no_delay_is_a_backoff(kind):
    """A hostile or broken server's Retry-After: superscript digits (latin-1, so a valid header), signs, fractions
    and impossible dates are unreadable, so the policy's backoff applies; never an exception of the client's own."""
    for odd in ("\u00b2", "-1", "1e3", "1.5", "Mon, 99 Dec 2026 99:99:99 GMT"):
        assert retry_after(odd) is None, odd
        busy = (503, {"Retry-After": odd}, BUSY[2])
        with ScriptedServer([busy, (200, {}, PREDICTION)]) as server:
            assert both(server.url)[kind].predict("iris", [[5.1, 3.5, 1.4, 0.2]]).predictions == ["setosa"]
            assert len(server.requests) == 2


@pytest.mark.parametrize("kind", [0, 1], ids=["Client", "AsyncClient"])
@pytest.mark.parametrize("body", [{}, [], None, {"models": 5}, {"explanations": [{"attributions": 1}]}], ids=repr)
def test_json_that_is_not_nnserves_answer_is_an_nnserve_error(kind, body):
    """Something else at the URL (a proxy's page as JSON, another service): NnserveError, like a body that is no
    JSON at all, never the KeyError or TypeError of reading it."""
    with ScriptedServer([(200, {}, body)]) as server:
        client = both(server.url)[kind]
        for call in (
            lambda: client.predict("iris", [[1, 2, 3, 4]]),
            client.models,
            lambda: client.explain("iris", [[1, 2, 3, 4]]),
        ):
            with pytest.raises(NnserveError, match="answered a body that is not nnserve's answer") as caught:
                call()
            assert caught.value.status == 0
