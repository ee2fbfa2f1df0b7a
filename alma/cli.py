"""The `alma` command line. User-fixable errors print one line and exit 2; nothing else is caught."""

from __future__ import annotations

import argparse
import sys

from alma.config import DEFAULT_PRESET, PRESETS, dump_config, load_config
from alma.core.errors import AlmaError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help=f"built-in configuration to start from (default: {DEFAULT_PRESET})")
    p.add_argument("--config", metavar="FILE", help="YAML file layered over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field, dotted path, e.g. --set rounds=3 --set round.responses_per_prompt=8")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<name>)")
    p.add_argument("--seed-sft", metavar="FILE", help="SFT seed data, JSONL or Parquet (default: bundled)")
    p.add_argument("--seed-judge", metavar="FILE", help="judge seed triplets, JSONL or Parquet (default: bundled)")


def _config(args: argparse.Namespace):
    overrides = list(args.overrides)
    for flag, key in (("out", "out_dir"), ("seed_sft", "seed_sft"), ("seed_judge", "seed_judge")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(args.preset, args.config, overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alma", description="Align a base LLM with minimal annotation (ALMA) on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) the whole recipe as a Ray job")
    _add_config_args(run)
    run.add_argument("--force", action="store_true",
                     help="reuse a run folder made with another config (its committed stages are kept)")
    show = sub.add_parser("config", help="print the resolved configuration as YAML")
    _add_config_args(show)
    check = sub.add_parser("check-seeds", help="validate seed files without running anything")
    check.add_argument("--seed-sft", metavar="FILE")
    check.add_argument("--seed-judge", metavar="FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            sys.stdout.write(dump_config(_config(args)))
        elif args.command == "check-seeds":
            from alma.core.seeds import load_judge, load_sft

            if args.seed_sft:
                print(f"{args.seed_sft}: {len(load_sft(args.seed_sft))} SFT rows OK")
            if args.seed_judge:
                print(f"{args.seed_judge}: {len(load_judge(args.seed_judge))} judge rows OK")
        elif args.command == "run":
            from alma.jobs.driver import run

            run(_config(args), force=args.force)
    except AlmaError as e:
        print(f"alma: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alma: interrupted; committed stages are kept, run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
