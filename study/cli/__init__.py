"""Command line: `python -m study run|worker|status|report|tune|analyze|ui` (exit 2 on invalid input)."""

from __future__ import annotations

import sys

from study.cli.parser import build_parser
from study.core.affinity import pin_from_env
from study.core.logs import send_lines_to
from study.core.quiet import is_verbose, keep_logs, quiet_start


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        pin_from_env()  # before any math library starts its threads (study.core.affinity)
    if args.verbose or is_verbose():
        keep_logs()
    else:
        quiet_start()
    send_lines_to()  # the study's own lines (progress, checks, warnings) on stdout (study.core.logs)
    if args.command == "analyze":  # reads a store and writes a report: no training stack to import
        from study.cli.analyze import analyze

        return analyze(args)
    from study.cli import commands, tune_commands  # after quiet_start: they import TensorFlow's and JAX's loggers

    from study.cli.common import store_fault
    from study.core.errors import StoreFault

    handlers = {"run": commands.run, "worker": commands.worker, "status": commands.status,
                "report": commands.report, "ui": commands.ui, "tune": tune_commands.tune,
                "synthesize": commands.synthesize, "plan": commands.plan}
    try:
        return handlers[args.command](args)
    except StoreFault as fault:  # a store failed mid-way (study.core.store_faults): one line, exit 1
        return store_fault(fault)


if __name__ == "__main__":
    sys.exit(main())
