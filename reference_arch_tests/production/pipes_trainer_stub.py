"""Stands in for ``reference_arch.common.trainer.entry`` in the remote-mode test: it opens Dagster
Pipes the same way and reports the same kinds of messages (start, metrics, checkpoint, done), and
writes its "checkpoint" under the home it was given, without training anything."""

import os
from pathlib import Path

from dagster_pipes import open_dagster_pipes


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        home = Path(os.environ["REFERENCE_ARCH_HOME"])
        pipes.log.info(f"stub trainer on {extras['device']}")
        pipes.report_custom_message({"event": "start", "device": extras["device"], "resumed_from_step": 0})
        pipes.report_custom_message({"event": "metrics", "step": 1, "loss": 2.5, "lr": 1e-3,
                                     "tokens_per_s": 100.0, "mfu": 0.0})
        checkpoint = home / "runs" / extras["run_name"] / "checkpoint-1"
        checkpoint.mkdir(parents=True)
        (checkpoint / "checkpoint.json").write_text("{}")
        pipes.report_custom_message({"event": "checkpoint", "step": 1, "path": str(checkpoint), "loss": 2.5})
        pipes.report_custom_message({
            "event": "done", "global_step": 1, "device": extras["device"], "precision": extras["precision"],
            "home": str(home), "secret_present": bool(os.environ.get("OPENAI_API_KEY")),
        })


if __name__ == "__main__":
    main()
