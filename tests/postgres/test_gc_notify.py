"""A version gc removes from the database stops answering on a web worker that cached it, by NOTIFY."""

from __future__ import annotations

from helpers import read_catalog_csv, wait_for

import nn
from service import create_app
from service.store.postgres import PostgresModelStore

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def test_a_version_gc_removed_on_another_node_answers_404_here(tmp_path, database_url: str) -> None:
    X, y, names = read_catalog_csv("iris")
    estimator = nn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y, feature_names=names)
    admin = PostgresModelStore(tmp_path / "admin-cache", database_url)  # another node: its own cache
    for _ in range(3):
        admin.publish("iris", estimator, {"task": "classification"})
    admin.activate("iris", 1)
    admin.activate("iris", 3)  # previous 1: version 2 is the one retention lets go
    # the poll never runs during the test: only the NOTIFY of gc can tell this worker
    app = create_app(
        {
            "NNSERVE_STORE": str(tmp_path / "web-cache"),
            "NNSERVE_DATABASE_URL": database_url,
            "NNSERVE_ACTIVATION_POLL": 3600.0,
            "TESTING": True,
        }
    )
    client = app.test_client()
    try:
        pinned = client.post("/v1/models/iris/versions/2/predict", json=ROW)
        assert pinned.status_code == 200 and pinned.get_json()["version"] == 2  # cached here, files and all
        assert admin.gc("iris", keep_versions=1).versions == [("iris", 2)]

        def gone() -> bool:
            response = client.post("/v1/models/iris/versions/2/predict", json=ROW)
            assert response.status_code in (200, 404), response.get_data(as_text=True)
            return response.status_code == 404

        wait_for(gone, 30, "the web worker to drop version 2")
        assert "no version 2" in client.post("/v1/models/iris/versions/2/predict", json=ROW).get_json()["message"]
        assert client.post("/v1/models/iris/versions/1/predict", json=ROW).status_code == 200
    finally:
        app.extensions["nnserve.watcher"].stop()
        admin.close()
