"""What the client tests share (imported by name: ``conftest`` is ambiguous across the suite)."""

from service.client import Client
from service.client.operations import Answer

TOKEN = "client-suite-token-8c21e7"


class FlaskClient(Client):
    """The client with the Flask test client as its transport: the same requests, no sockets."""

    def __init__(self, app, token=None):
        super().__init__("http://localhost", token=token)
        self._flask = app.test_client()

    def _exchange(self, method, path, headers, data):
        response = self._flask.open(path, method=method, headers=headers, data=data)
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.get_data())


class ScriptedServer:
    """A real HTTP server on a free loopback port that answers each request with the next of ``answers``
    (status, headers, JSON body), the last one forever, and records each request's method and path."""

    def __init__(self, answers):
        import http.server
        import json
        import threading

        self.answers = list(answers)
        self.requests = []
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                scripted.requests.append((self.command, self.path))
                status, headers, body = scripted.answers[min(len(scripted.requests), len(scripted.answers)) - 1]
                raw = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
