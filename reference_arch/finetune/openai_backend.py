"""The OpenAI backend: upload the two JSONL files, create a fine-tuning job, poll it to its end.

The client comes from ``dagster-openai``'s ``OpenAIResource``. The job's id is remembered under
the project home, keyed by the files and settings, so a run that dies while polling resumes
the same job when re-run instead of paying for a second one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

RUNNING = {"validating_files", "queued", "running"}
FAILED = {"failed", "cancelled"}


class FineTuningJobFailed(RuntimeError):
    """The job ended without a model; the message is OpenAI's."""


@dataclass
class JobSettings:
    model: str
    suffix: Optional[str] = None
    n_epochs: Optional[int] = None
    seed: Optional[int] = None
    poll_interval_s: float = 10.0
    poll_max_interval_s: float = 120.0
    timeout_s: float = 6 * 3600.0


def _job_key(train: Path, validation: Path, settings: JobSettings) -> str:
    digest = hashlib.sha256()
    for path in (train, validation):
        digest.update(path.read_bytes())
    digest.update(json.dumps([settings.model, settings.suffix, settings.n_epochs, settings.seed]).encode())
    return digest.hexdigest()


def _remembered(state_path: Path) -> dict:
    return json.loads(state_path.read_text()) if state_path.exists() else {}


def _remember(state_path: Path, key: str, job_id: str) -> None:
    state = _remembered(state_path)
    state[key] = job_id
    from reference_arch.common.atomic import write_json

    write_json(state_path, state)


def create_job(client, train: Path, validation: Path, settings: JobSettings, log: Callable[[str], None]):
    """Upload both files and create the job; returns the job."""
    file_ids = []
    for path in (train, validation):
        with path.open("rb") as handle:
            uploaded = client.files.create(file=(path.name, handle), purpose="fine-tune")
        log(f"uploaded {path.name} as {uploaded.id}")
        file_ids.append(uploaded.id)
    extra: dict[str, Any] = {}
    if settings.n_epochs:
        extra["method"] = {"type": "supervised",
                           "supervised": {"hyperparameters": {"n_epochs": settings.n_epochs}}}
    if settings.suffix:
        extra["suffix"] = settings.suffix
    if settings.seed is not None:
        extra["seed"] = settings.seed
    job = client.fine_tuning.jobs.create(model=settings.model, training_file=file_ids[0],
                                         validation_file=file_ids[1], **extra)
    log(f"created fine-tuning job {job.id} on {settings.model}")
    return job


def wait_for_job(client, job_id: str, settings: JobSettings, log: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep):
    """Poll with exponential backoff (rate limits and server errors back off too) until the job ends."""
    import openai

    interval, waited, status = settings.poll_interval_s, 0.0, None
    while True:
        try:
            job = client.fine_tuning.jobs.retrieve(job_id)
        except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as err:
            log(f"polling {job_id}: {type(err).__name__}, retrying in {interval:.0f} s")
            job = None
        if job is not None:
            if job.status != status:
                status = job.status
                log(f"job {job_id}: {status}")
            if status == "succeeded":
                return job
            if status in FAILED:
                message = job.error.message if job.error and job.error.message else "no message from OpenAI"
                raise FineTuningJobFailed(f"OpenAI fine-tuning job {job_id} {status}: {message}")
        if waited >= settings.timeout_s:
            raise TimeoutError(
                f"OpenAI fine-tuning job {job_id} still {status} after {waited:.0f} s; "
                "re-run the asset to keep waiting for the same job")
        sleep(interval)
        waited += interval
        interval = min(interval * 1.5, settings.poll_max_interval_s)


def fine_tune(client, train: Path, validation: Path, settings: JobSettings, state_path: Path,
              log: Callable[[str], None], sleep: Callable[[float], None] = time.sleep):
    """The succeeded job: resumed when these files and settings already have a live or finished job."""
    key = _job_key(train, validation, settings)
    job_id = _remembered(state_path).get(key)
    if job_id:
        previous = client.fine_tuning.jobs.retrieve(job_id)
        if previous.status in FAILED:
            job_id = None
        else:
            log(f"resuming fine-tuning job {job_id} ({previous.status})")
    if not job_id:
        job_id = create_job(client, train, validation, settings, log).id
        _remember(state_path, key, job_id)
    return wait_for_job(client, job_id, settings, log, sleep)


def job_metadata(job) -> dict:
    return {
        "openai/job_id": job.id,
        "openai/status": job.status,
        "openai/base_model": job.model,
        "openai/fine_tuned_model": job.fine_tuned_model or "",
        "openai/trained_tokens": int(job.trained_tokens or 0),
        "openai/training_file": job.training_file,
        "openai/validation_file": job.validation_file or "",
    }
