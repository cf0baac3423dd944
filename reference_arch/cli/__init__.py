"""``reference-arch``: materialize the locations, ask questions, judge answers, run the demo.

Everything runs in this process on the project's Dagster instance (``DAGSTER_HOME``, default
``.dagster_home/``), so the runs it makes show up in ``make dev`` afterwards.

Parts: ``runs`` (the instance, run planning, ``materialize_location``), ``answers`` (``ask``), ``feedback``,
``demo``;
this module holds the argument parser and the console script.
"""

from __future__ import annotations

import argparse
import sys

from reference_arch.cli.answers import ASK_TARGETS, ask, print_answer
from reference_arch.cli.demo import run_demo
from reference_arch.cli.feedback import feedback_line, give_feedback
from reference_arch.cli.runs import CliError, check_summary, instance, materialize_location
from reference_arch.common.locations import LOCATIONS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reference-arch", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialize every asset and partition of a location")
    m.add_argument("location", choices=[*LOCATIONS, "all"])
    a = sub.add_parser("ask", help="run a question job and print the answer")
    a.add_argument("target", choices=list(ASK_TARGETS))
    a.add_argument("question")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--template", help="prompt template (a partition of prompt/template; default pandas)")
    f = sub.add_parser("feedback", help="record a verdict (up or down) on a question run's answer")
    f.add_argument("run_id", help="the run id `ask` printed")
    f.add_argument("verdict", help="up or down")
    f.add_argument("--comment", default="", help="why, in a few words")
    sub.add_parser("demo", help="pretrain -> finetune -> rag -> prompt, then ask the seed questions")
    return p


def quiet_warnings() -> None:
    """Dagster's beta/preview notices are for library authors, not for the CLI's reader."""
    import warnings

    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)


def main(argv: list[str] | None = None) -> int:
    from reference_arch.common.settings_model import SettingsError, load_settings

    args = parser().parse_args(argv)
    try:
        load_settings()  # every REFERENCE_ARCH_* setting, before any command reads one
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    quiet_warnings()
    try:
        inst = instance()
        if args.command == "materialize":
            for location in LOCATIONS if args.location == "all" else [args.location]:
                print(f"== materialize {location}")
                for line in check_summary(materialize_location(location, inst)):
                    print(f"  {line}")
        elif args.command == "ask":
            print_answer(ask(args.target, args.question, inst, args.template), args.json)
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
