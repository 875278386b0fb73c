"""What the client tests share (imported by name: ``conftest`` is ambiguous across the suite)."""

from service.client import Client

TOKEN = "client-suite-token-8c21e7"


class FlaskClient(Client):
    """The client with the Flask test client as its transport: the same requests, no sockets."""

    def __init__(self, app, token=None):
        super().__init__("http://localhost", token=token)
        self._flask = app.test_client()

    def _send(self, method, path, headers, data):
        response = self._flask.open(path, method=method, headers=headers, data=data)
        return response.status_code, response.get_data()
