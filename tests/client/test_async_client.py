"""``AsyncClient``: the same methods as ``Client`` (checked by signature), answering what ``Client`` answers from
``nnserve serve`` (real gunicorn and retraining worker)."""

import asyncio
import inspect

import numpy as np
import pandas as pd
import pytest
from client_support import TOKEN
from helpers import free_port

from service.client import AsyncClient, Client, NnserveError

IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def public(cls):
    return {name: member for name, member in vars(cls).items() if callable(member) and not name.startswith("_")}


def test_async_client_has_every_method_of_client_with_the_same_signature():
    sync, both = public(Client), public(AsyncClient)
    assert set(both) - set(sync) == {"aclose"}
    assert set(sync) - set(both) == set()
    for name, method in sync.items():
        assert inspect.iscoroutinefunction(both[name]), name
        assert inspect.signature(both[name]) == inspect.signature(method), name
    assert inspect.signature(AsyncClient.__init__) == inspect.signature(Client.__init__)


def test_async_client_answers_what_client_answers(live):
    sync = Client(live.url, token=TOKEN, timeout=30)

    async def main():
        async with AsyncClient(live.url, token=TOKEN, timeout=30) as client:
            assert await client.models() == sync.models()
            assert await client.model("iris") == sync.model("iris")
            expected = sync.predict("iris", IRIS)
            frame = pd.DataFrame(IRIS, columns=FEATURES)[FEATURES[::-1]]
            for rows in (IRIS, np.array(IRIS), frame):
                assert await client.predict("iris", rows) == expected
            many = await asyncio.gather(*(client.predict("iris", IRIS) for _ in range(8)))
            assert all(m.predictions == expected.predictions for m in many)
            inferred = await client.infer("iris", IRIS, binary=True)
            assert inferred.outputs["labels"].tolist() == expected.predictions
            with pytest.raises(NnserveError) as caught:
                await client.predict("no_such_model", IRIS)
            assert caught.value.status == 404
            assert (await client.monitoring("iris")).model == "iris"
            job = await client.retrain("iris", promote="never", hyperparameters={"epochs": 2})
            done = await client.wait(job, timeout=120, poll=0.2)
            assert done.status == "succeeded", done
            assert done == sync.job(job.id)
            assert (await client.jobs(model="iris")).total == sync.jobs(model="iris").total

    asyncio.run(main())


def test_async_client_unreachable_is_status_0():
    async def main():
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
            await client.models()

    with pytest.raises(NnserveError) as caught:
        asyncio.run(main())
    assert caught.value.status == 0 and "cannot reach" in caught.value.message


def test_the_key_stays_out_of_the_async_clients_repr():
    async def main():
        async with AsyncClient("http://127.0.0.1:1", key="nns_secret") as client:
            return repr(client)

    assert "nns_secret" not in asyncio.run(main())
