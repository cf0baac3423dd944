"""``reference-arch``: materialize the locations, ask questions, judge answers, run the demo.

Everything runs in this process on the project's Dagster instance (``DAGSTER_HOME``, default
``.dagster_home/``), so the runs it makes show up in ``make dev`` afterwards.

Parts: ``runs`` (the instance, run planning, ``materialize_location``), ``answers`` (``ask``), ``feedback``,
``models``, ``demo``;
this module holds the argument parser and the console script.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from reference_arch.cli.answers import ASK_TARGETS, ask, print_answer
from reference_arch.cli.demo import run_demo
from reference_arch.cli.feedback import feedback_line, give_feedback
from reference_arch.cli.runs import CliError, check_summary, instance, materialize_location
from reference_arch.common.feedback import VERDICTS
from reference_arch.common.locations import LOCATIONS

EXAMPLES = {  # each subcommand's --help ends with these
    "materialize": """\
examples:
  reference-arch materialize prompt   # the prompt templates, their evaluation, the default question's answer
  reference-arch materialize all      # pretrain -> finetune -> rag -> prompt, in that order""",
    "ask": """\
examples:
  reference-arch ask prompt "What is a series?" --template pandas_example
  reference-arch ask rag "How do I rename the index of a Series?" --k 3 --mode hybrid --json
  reference-arch ask prompt "What is a series?" --model registry:code-lm@latest   # see `reference-arch models`
  reference-arch ask finetuned "Reading a CSV with ';' fails, what should I do?"

--k and --mode are for `ask rag`; --template for `ask prompt`; --model for prompt and rag (the finetuned
target answers with the published fine-tuned model, or REFERENCE_ARCH_FINETUNED_LLM_MODEL).""",
    "feedback": """\
examples:
  reference-arch feedback 0b1c2d3e-... up                       # the run id `ask` printed
  reference-arch feedback 0b1c2d3e-... down --comment "cites the wrong page"   # why, in a few words""",
    "models": """\
examples:
  reference-arch models                                          # the default is marked *
  REFERENCE_ARCH_LLM_MODEL=registry:code-lm@latest reference-arch models""",
    "demo": """\
examples:
  reference-arch demo        # what `make demo` runs: 11 to 21 minutes on 2 cores""",
}


class Deferred(Sequence[str]):
    """Choices argparse reads only when it checks or shows them: the retrieval modes live with the rag
    location, whose import loads Dagster (a second or two) that `--version` and `--help` need not wait for."""

    def __init__(self, load: Callable[[], Sequence[str]]):
        self._load, self._items = load, None

    def _get(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    def __getitem__(self, i):
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())


def retrieval_modes() -> tuple[str, ...]:
    from reference_arch.rag.defs.inference import RETRIEVAL_MODES

    return RETRIEVAL_MODES


def retrieval_k(text: str) -> int:
    """``--k``: a whole number of sources, as many as ``rag/retrieved_sources`` accepts."""
    from reference_arch.rag.defs.inference import MAX_K

    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"{k} sources is out of range: use 1 to {MAX_K}")
    return k


def chat_model(text: str) -> str:
    """``--model``: checked as REFERENCE_ARCH_LLM_MODEL is: any name for an OpenAI-compatible server, else a
    packaged:, registry: or folder model (``local_model_problem``)."""
    import os

    from reference_arch.common.settings_model import local_model_problem

    openai = os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
    if not openai and (problem := local_model_problem(text)):
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reference-arch")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed: `make install`)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reference-arch", description=__doc__.splitlines()[0],
                                epilog="`reference-arch COMMAND --help` shows a command's options and examples.")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's word
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                              epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)

    m = command("materialize", "materialize every asset and partition of a location")
    m.add_argument("location", choices=[*LOCATIONS, "all"])
    a = command("ask", "run a question job and print the answer")
    a.add_argument("target", choices=list(ASK_TARGETS))
    a.add_argument("question")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--template", help="prompt template (a partition of prompt/template; default pandas)")
    a.add_argument("--k", type=retrieval_k, metavar="N", help="rag: how many sources to retrieve (default 5)")
    a.add_argument("--mode", choices=Deferred(retrieval_modes), metavar="MODE",  # a metavar: not loaded to build
                   help="rag: how to retrieve, one of %(choices)s (default: the one that scored best on the "
                        "evaluation set)")
    a.add_argument("--model", type=chat_model, metavar="NAME",
                   help="prompt, rag: the chat model for this question (`reference-arch models` lists the local ones)")
    f = command("feedback", "record a verdict on a question run's answer")
    f.add_argument("run_id", help="the run id `ask` printed")
    f.add_argument("verdict", choices=VERDICTS)
    f.add_argument("--comment", default="", help="why, in a few words")
    command("models", "list the chat models: the packaged one and the registry's, the default marked")
    command("demo", "pretrain -> finetune -> rag -> prompt, then ask the seed questions")
    return p


def quiet_warnings() -> None:
    """Dagster's beta/preview notices are for library authors, not for the CLI's reader."""
    import warnings

    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)


def main(argv: list[str] | None = None) -> int:
    from reference_arch.common.settings import load_env_file
    from reference_arch.common.settings_model import SettingsError, load_settings

    load_env_file()  # ./.env, as `dagster dev` reads it, but a variable already set in the environment wins
    args = parser().parse_args(argv)
    try:
        load_settings()  # every REFERENCE_ARCH_* setting, before any command reads one
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "models":  # files only: no instance
        from reference_arch.cli.models import model_lines

        print("\n".join(model_lines()))
        return 0
    quiet_warnings()
    try:
        inst = instance()
        if args.command == "materialize":
            for location in LOCATIONS if args.location == "all" else [args.location]:
                print(f"== materialize {location}")
                for line in check_summary(materialize_location(location, inst)):
                    print(f"  {line}")
        elif args.command == "ask":
            print_answer(ask(args.target, args.question, inst, args.template, k=args.k, mode=args.mode,
                             model=args.model), args.json)
        elif args.command == "feedback":
            print(feedback_line(give_feedback(args.run_id, args.verdict, args.comment, inst)))
        else:
            run_demo(inst)
    except CliError as err:
        from reference_arch.common.secrets import scrub

        print(f"error: {scrub(err)}", file=sys.stderr)  # the last line of defence: clients scrub their own
        return 1
    return 0


def run() -> None:
    """The console script. Skips interpreter teardown, where duckdb 2's bindings print pages of
    harmless "leaked function" notices after the output the user came for."""
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
