"""A local stand-in for the Kubernetes API server, for the trainer's remote mode test.

It speaks the part of the core/v1 API that ``PipesK8sClient`` uses (create, list, read and delete a
pod; follow its logs with timestamps) and runs each pod's first container here, as a subprocess
with the container's command, env and secrets (``envFrom``), and serves its output as the pod's
log. Mounts are mapped to local folders. Nothing else of Kubernetes is imitated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+))?(?P<log>/log)?$")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Pod:
    def __init__(self, namespace: str, body: dict, secrets: dict, mounts: dict[str, str]):
        self.namespace, self.body, self.started = namespace, body, now()
        container = body["spec"]["containers"][0]
        env = {**os.environ}
        for source in container.get("envFrom", []):
            env.update(secrets.get(source["secretRef"]["name"], {}))
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        for path, local in mounts.items():  # a volume mounted at `path` is the local folder here
            env = {k: v.replace(path, local) for k, v in env.items()}
        command = [sys.executable if part == "python" else part for part in container["command"]]
        self.lines: list[str] = []
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, cwd=os.getcwd())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(f"{now()} {line.rstrip()}")
        self.process.wait()
        self.finished = now()

    def done(self) -> bool:
        return not self.reader.is_alive()

    def as_json(self) -> dict:
        container = self.body["spec"]["containers"][0]
        status = {"name": container["name"], "image": container["image"], "imageID": "", "restartCount": 0}
        if self.done():
            code = self.process.returncode
            phase = "Succeeded" if code == 0 else "Failed"
            status.update(ready=False, state={"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": self.started, "finishedAt": self.finished}})
        else:
            phase = "Running"
            status.update(ready=True, started=True, state={"running": {"startedAt": self.started}})
        return {**self.body, "apiVersion": "v1", "kind": "Pod",
                "metadata": {**self.body["metadata"], "namespace": self.namespace},
                "status": {"phase": phase, "containerStatuses": [status]}}


class FakeKubernetes:
    """``with FakeKubernetes(tmp_path, secrets=..., mounts=...) as k8s:`` then ``k8s.kubeconfig``."""

    def __init__(self, folder: Path, secrets: dict | None = None, mounts: dict[str, str] | None = None):
        self.folder, self.secrets, self.mounts = folder, secrets or {}, mounts or {}
        self.pods: dict[str, Pod] = {}
        self.created: list[dict] = []  # every pod body as the client sent it
        self.deleted: list[str] = []

    def __enter__(self) -> "FakeKubernetes":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def reply(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def route(self):
                url = urlsplit(self.path)
                match = PODS.match(url.path)
                if not match:
                    self.reply(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
                    return None, None
                return match, parse_qs(url.query)

            def do_POST(self):
                match, _ = self.route()
                if match:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    fake.created.append(body)
                    pod = Pod(match["ns"], body, fake.secrets, fake.mounts)
                    fake.pods[body["metadata"]["name"]] = pod
                    self.reply(201, pod.as_json())

            def do_GET(self):
                match, query = self.route()
                if not match:
                    return
                if match["name"] is None:  # list, by field selector metadata.name=...
                    wanted = query.get("fieldSelector", [""])[0].removeprefix("metadata.name=")
                    items = [p.as_json() for n, p in fake.pods.items() if n == wanted and n not in fake.deleted]
                    self.reply(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
                    return
                pod = fake.pods.get(match["name"])
                if pod is None:
                    self.reply(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
                elif match["log"]:
                    self.stream_log(pod, follow=query.get("follow", ["false"])[0].lower() == "true")
                else:
                    self.reply(200, pod.as_json())

            def stream_log(self, pod: Pod, follow: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()  # no length: the log ends when the connection closes
                sent = 0
                while True:
                    finished = pod.done()
                    for line in pod.lines[sent:]:
                        self.wfile.write((line + "\n").encode())
                        sent += 1
                    self.wfile.flush()
                    if finished or not follow:
                        return
                    time.sleep(0.05)

            def do_DELETE(self):
                match, _ = self.route()
                if match:
                    fake.deleted.append(match["name"])
                    self.reply(200, {"kind": "Status", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        self.kubeconfig = self.folder / "kubeconfig.yaml"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "fake", "user": {"token": "not-a-real-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "training"}}],
        }))
        return self

    def __exit__(self, *exc) -> None:
        for pod in self.pods.values():
            if pod.process.poll() is None:
                pod.process.kill()
        self.server.shutdown()
        self.server.server_close()
