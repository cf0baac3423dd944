"""A local HTTP server speaking the parts of OpenAI's API the finetune location calls:
``POST /v1/files``, ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}`` and
``POST /v1/chat/completions``, with the same JSON shapes, so the real ``openai`` client runs
against it.

Scenarios: a job walks through ``statuses`` one poll at a time; ``rate_limit_polls`` lists the
poll numbers answered 429; ``error_message`` is the failed job's error. Chat completions answer
the uploaded files' reference answer for fine-tuned models (``ft:``) and a canned line for the
base model, so an evaluation can tell them apart (``finetuned_learns=False``: it cannot).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, statuses=("validating_files", "running", "succeeded"), rate_limit_polls=(),
                 error_message="Training file has invalid examples", base_answer="I am not sure.",
                 finetuned_learns=True):
        self.statuses = list(statuses)
        self.rate_limit_polls = set(rate_limit_polls)
        self.error_message = error_message
        self.base_answer = base_answer
        self.finetuned_learns = finetuned_learns  # False: the fine-tuned model answers like its base
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.polls = 0
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # -- the API ---------------------------------------------------------------------------
    def upload(self, headers, body: bytes) -> dict:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        content = parts["file"].get_payload(decode=True)
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": parts["file"].get_filename(), "status": "processed",
                               "purpose": parts["purpose"].get_payload(decode=True).decode(), "content": content}
        return {k: v for k, v in self.files[file_id].items() if k != "content"}

    def create_job(self, body: dict) -> tuple[int, dict]:
        for key in ("training_file", "validation_file"):
            if body.get(key) and body[key] not in self.files:
                return 400, {"error": {"message": f"file {body[key]} not found", "type": "invalid_request_error"}}
        job_id = f"ftjob-{next(self._ids)}"
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "model": body["model"],
            "training_file": body["training_file"], "validation_file": body.get("validation_file"),
            "organization_id": "org-test", "result_files": [], "seed": body.get("seed", 42),
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "status": self.statuses[0], "fine_tuned_model": None, "finished_at": None, "trained_tokens": None,
            "error": None, "suffix": body.get("suffix"), "_step": 0,
        }
        return 200, self._public(self.jobs[job_id])

    def poll_job(self, job_id: str) -> tuple[int, dict]:
        self.polls += 1
        if self.polls in self.rate_limit_polls:
            return 429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
        job = self.jobs.get(job_id)
        if job is None:
            return 404, {"error": {"message": f"no job {job_id}", "type": "invalid_request_error"}}
        job["_step"] = min(job["_step"] + 1, len(self.statuses) - 1)
        job["status"] = self.statuses[job["_step"]]
        if job["status"] == "succeeded":
            job.update(fine_tuned_model=f"ft:{job['model']}:test::{job_id[-4:]}", trained_tokens=12345,
                       finished_at=int(time.time()))
        elif job["status"] == "failed":
            job.update(error={"code": "invalid_training_file", "message": self.error_message, "param": None},
                       finished_at=int(time.time()))
        return 200, self._public(job)

    def chat(self, body: dict) -> dict:
        question = body["messages"][-1]["content"]
        answer = self.base_answer
        if body["model"].startswith("ft:") and self.finetuned_learns:
            for file in self.files.values():
                for line in file["content"].decode().splitlines():
                    messages = json.loads(line)["messages"]
                    if messages[1]["content"] == question:
                        answer = messages[2]["content"]
        return {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": answer, "refusal": None}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self):
                fake.requests.append(("POST", self.path))
                body = self._body()
                if self.path == "/v1/files":
                    return self._send(200, fake.upload(self.headers, body))
                if self.path == "/v1/fine_tuning/jobs":
                    return self._send(*fake.create_job(json.loads(body)))
                if self.path == "/v1/chat/completions":
                    return self._send(200, fake.chat(json.loads(body)))
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                match = re.fullmatch(r"/v1/fine_tuning/jobs/([\w-]+)", self.path)
                if match:
                    return self._send(*fake.poll_job(match.group(1)))
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

        return Handler
