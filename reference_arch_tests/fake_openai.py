"""A local HTTP server speaking OpenAI's ``/v1/chat/completions`` and ``/v1/embeddings``.

Fakes are only for network services: this one lets the ``openai`` provider be tested through the
real openai client (its retries, errors and parsing) without a key or the internet.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """Answers from a script: each entry of ``script`` is (status, body-or-None) for one request;
    when the script runs out, every request succeeds."""

    def __init__(self, answer: str = "A Series is a one-dimensional labeled array.", script=None):
        self.answer = answer
        self.script = list(script or [])
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({"path": self.path, "body": body,
                                        "authorization": self.headers.get("Authorization")})
                status, payload = server.script.pop(0) if server.script else (200, None)
                if payload is None and status == 200:
                    payload = server.success(self.path, body)
                elif payload is None:
                    payload = {"error": {"message": f"error {status}", "type": "api_error", "code": None}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def success(self, path: str, body: dict) -> dict:
        if path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return {"object": "list", "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    "data": [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
                             for i, t in enumerate(inputs)]}
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.answer}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
