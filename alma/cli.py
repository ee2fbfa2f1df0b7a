"""The `alma` command line. User-fixable errors print one line and exit 2; nothing else is caught."""

from __future__ import annotations

import argparse
import json
import os
import sys

from alma.config import DEFAULT_PRESET, PRESETS, config_reference, dump_config, load_config, load_run_config
from alma.core import interrupts
from alma.core.errors import AlmaError, ConfigError
from alma.commands.judge_eval import add_arguments as add_eval_arguments
from alma.commands.model_eval import add_arguments as add_model_eval_arguments
from alma.commands.plan import add_arguments as add_plan_arguments


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line and exit code 2 like every other user error."""

    def error(self, message: str):
        command = self.prog.removeprefix("alma").strip()
        self.exit(2, f"alma: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _add_preset_args(p: argparse.ArgumentParser, set_example: str, out_help: str) -> None:
    """--preset, --config, --set and --out: how every command that builds a config layers it."""
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help=f"built-in configuration to start from (default: {DEFAULT_PRESET})")
    p.add_argument("--config", metavar="FILE", help="YAML file layered over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one field, dotted path, e.g. {set_example}")
    p.add_argument("--out", metavar="DIR", help=out_help)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    _add_preset_args(p, "--set rounds=3 --set round.responses_per_prompt=8", "run folder (default: runs/<name>)")
    p.add_argument("--seed-sft", metavar="FILE", help="SFT seed data: JSONL, Parquet or a datasets.save_to_disk "
                   "folder (default: bundled; layouts: docs/seed-data.md)")
    p.add_argument("--seed-judge", metavar="FILE", help="judge seed triplets or ratings: JSONL, Parquet or a "
                   "datasets.save_to_disk folder (default: bundled)")
    _add_drop_invalid(p)


def _add_drop_invalid(p: argparse.ArgumentParser) -> None:
    p.add_argument("--drop-invalid", action="store_true", default=None,
                   help="drop invalid seed rows (counted by reason; in a run, written to RUN/seeds/rejects-*.jsonl) "
                   "instead of stopping at the first (seeds.drop_invalid)")


def _add_seed_rule_args(p: argparse.ArgumentParser) -> None:
    """How a command that reads seed files without a run takes the seeds.* settings."""
    _add_drop_invalid(p)
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help=f"built-in configuration whose seeds.* settings apply (default: {DEFAULT_PRESET})")
    p.add_argument("--config", metavar="FILE", help="YAML file layered over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field, e.g. --set seeds.judge_attributes=[helpfulness,correctness]")


def _seed_rules(args: argparse.Namespace):
    overrides = [*args.overrides, *(["seeds.drop_invalid=true"] if args.drop_invalid else [])]
    return load_config(args.preset, args.config, overrides).seeds.rules()


def _config(args: argparse.Namespace):
    overrides = list(args.overrides)
    for flag, key in (("out", "out_dir"), ("seed_sft", "seed_sft"), ("seed_judge", "seed_judge"),
                      ("drop_invalid", "seeds.drop_invalid")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    resume = getattr(args, "resume", None)
    if resume is None:
        return load_config(args.preset, args.config, overrides)
    given = [flag for flag, value in (("--preset", args.preset), ("--config", args.config), ("--out", args.out))
             if value is not None]
    if given:
        raise ConfigError(f"--resume {resume} takes the run's own config.yaml; drop {', '.join(given)} (change "
                          "single fields with --set, and --force to accept the change)")
    return load_run_config(resume, overrides)


def _reference_alone(args: argparse.Namespace) -> None:
    """`alma config --reference` shows the config's own defaults: a flag that would change values is refused,
    not ignored."""
    given = [flag for flag, value in (("--preset", args.preset), ("--config", args.config), ("--out", args.out),
                                      ("--seed-sft", args.seed_sft), ("--seed-judge", args.seed_judge),
                                      ("--drop-invalid", args.drop_invalid), ("--set", args.overrides or None))
             if value is not None]
    if given:
        raise ConfigError(f"--reference lists every field with the config's own defaults; drop {', '.join(given)} "
                          "(alma config without --reference prints the resolved values)")


def _check_seeds(args: argparse.Namespace) -> None:
    from alma.core.seeds import read_judge, read_sft

    rules = _seed_rules(args)
    for path, read, what in ((args.seed_sft, read_sft, "SFT rows"), (args.seed_judge, read_judge, "judge rows")):
        if path:
            seeds = read(path, rules)
            kept = sum(seeds.layouts.values())
            count = f"{len(seeds.examples)} {what}" if len(seeds.examples) == kept else \
                f"{len(seeds.examples)} judge triplets from {kept} rows"
            print(f"{path}: {count} OK" + (f", {seeds.drop_text()}" if rules.drop_invalid else ""))


def _add_judge_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="judge checkpoint folder (e.g. runs/<name>/checkpoints/judge) or builtin:tiny")
    p.add_argument("--host", help="interface to listen on (default: judge_serve.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default: judge_serve.port, 8420)")
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding the bearer token clients must send (default: $ALMA_JUDGE_TOKEN; "
                   "neither: no auth)")
    _add_preset_args(p, "--set judge_serve.max_batch_size=32",
                     "folder for the local Ray's files (default: runs/<name>)")


def _add_judge_score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8420")
    p.add_argument("--prompt", required=True, help="the user's request")
    p.add_argument("--response", dest="responses", action="append", required=True, metavar="TEXT",
                   help="the response to score; repeat it to rank several (POST /v1/rank)")
    p.add_argument("--token-file", metavar="FILE", help="file holding the bearer token (default: $ALMA_JUDGE_TOKEN)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer (default 60)")


def _judge_serve_config(args: argparse.Namespace):
    overrides = list(args.overrides)
    for flag, key in (("out", "out_dir"), ("host", "judge_serve.host"), ("port", "judge_serve.port"),
                      ("token_file", "judge_serve.token_file")):
        value = getattr(args, flag)
        if value is not None:  # JSON-quoted, so YAML reads a path or host as text whatever it looks like
            overrides.append(f"{key}={json.dumps(value)}")
    return load_config(args.preset, args.config, overrides)


def _judge_serve(args: argparse.Namespace) -> None:
    from alma.cluster.serve_judge import serve_judge
    from alma.core.judge_api import load_token

    cfg = _judge_serve_config(args)
    serve_judge(cfg, args.checkpoint, load_token(cfg.judge_serve.token_file))


def _judge_score(args: argparse.Namespace) -> None:
    from alma.core.judge_api import load_token
    from alma.judge_client import call

    token = load_token(args.token_file)
    if len(args.responses) == 1:
        route, body = "/v1/score", {"prompt": args.prompt, "response": args.responses[0]}
    else:
        route, body = "/v1/rank", {"prompt": args.prompt, "responses": args.responses}
    print(json.dumps(call(args.url, route, body, token, args.timeout), indent=2))


def _add_k8s_render_args(p: argparse.ArgumentParser) -> None:
    from alma.cluster.k8s_render import RUN_PREFIX, VALUES

    p.add_argument("--overlay", required=True, metavar="NAME",
                   help="k8s/overlays/NAME to build: cpu-demo or gpu ('base' for the base alone)")
    p.add_argument("--set", dest="values", action="append", default=[], metavar="KEY=VALUE",
                   help="; ".join([*(f"{key}: {text}" for key, (_, text) in VALUES.items()),
                                   f"{RUN_PREFIX}KEY: any config field of the run, passed to alma run as --set KEY"]))
    p.add_argument("--dir", metavar="PATH", help="the k8s/ folder (default: ./k8s, else the one beside the sources)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the manifests here instead of stdout")


def _k8s_render(args: argparse.Namespace) -> None:
    from pathlib import Path

    from alma.cluster.k8s_render import default_k8s_dir, render

    text = render(Path(args.dir) if args.dir else default_k8s_dir(), args.overlay, args.values)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{args.output}: cannot write the manifests ({e.strerror or e})") from None
    else:
        sys.stdout.write(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alma", description="Align a base LLM with minimal annotation (ALMA) on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) the whole recipe as a Ray job")
    _add_config_args(run)
    run.add_argument("--resume", metavar="RUN",
                     help="continue the run in folder RUN (or at its URI, e.g. s3://bucket/runs/a) with the config "
                     "it was started with (running the same "
                     "command again resumes too); committed stages are kept, the rest is recomputed")
    run.add_argument("--force", action="store_true",
                     help="reuse a run folder made with another config or other seed data (its committed stages "
                     "are kept; the old config is saved as config.<hash>.yaml)")
    show = sub.add_parser("config", help="print the resolved configuration as YAML (--reference: every field)")
    _add_config_args(show)
    show.add_argument("--reference", action="store_true",
                      help="print the reference of every config field instead (Markdown: field, type, default, "
                      "help; docs/configuration.md is its output), with the config's own defaults")
    check = sub.add_parser("check-seeds", help="validate seed files without running anything")
    check.add_argument("--seed-sft", metavar="FILE")
    check.add_argument("--seed-judge", metavar="FILE")
    _add_seed_rule_args(check)
    data = sub.add_parser("data", help="what a seed or eval prompt file holds and what it maps to: layouts, fields, "
                          "rows, judge scores, examples, dropped rows")
    data.add_argument("file", metavar="FILE", help="JSONL, Parquet or a datasets.save_to_disk folder")
    data.add_argument("--kind", required=True, choices=("sft", "judge", "eval"),
                      help="read it as SFT seed data, judge seed data or eval prompts")
    data.add_argument("--json", action="store_true", help="print it as JSON")
    _add_seed_rule_args(data)
    judge = sub.add_parser("judge", help="the judge on its own")
    judge_sub = judge.add_subparsers(dest="judge_command", required=True)
    add_eval_arguments(judge_sub.add_parser(
        "eval", help="measure the base, fine-tuned and distilled judges on held-out triplets, per scoring mode"))
    _add_judge_serve_args(judge_sub.add_parser(
        "serve", help="serve a judge checkpoint over HTTP (Ray Serve, batching, bearer token) until Ctrl-C"))
    _add_judge_score_args(judge_sub.add_parser("score", help="score responses with a served judge"))
    status = sub.add_parser("status", help="where a run stands (stages done, rows, round, elapsed), also while it runs")
    status.add_argument("run", metavar="RUN", help="the run folder")
    status.add_argument("--json", action="store_true", help="print it as JSON")
    report = sub.add_parser("report", help="write report.html and PNG plots of a run (scores, best-of-N, timings)")
    report.add_argument("run", metavar="RUN", help="the run folder")
    report.add_argument("--out", metavar="DIR", help="where to write report.html and report/ (default: RUN)")
    add_model_eval_arguments(sub.add_parser(
        "eval", help="every round's model and the initial SFT model answer held-out prompts: scored by the run's "
        "judge, by rule-checked instructions (IFEval style) and by any second-opinion judge; mean score, compliance, "
        "win rates per round and category, best-of-N vs random, with bootstrap intervals"))
    add_plan_arguments(sub.add_parser(
        "plan", help="what a run costs before it starts: tokens, FLOPs, GPU- or CPU-hours and wall time per stage "
        "on a given cluster, and the dominant cost (--paper: the paper's setting beside its reported compute)"))
    k8s = sub.add_parser("k8s", help="Kubernetes (KubeRay) manifests")
    k8s_sub = k8s.add_subparsers(dest="k8s_command", required=True)
    _add_k8s_render_args(k8s_sub.add_parser(
        "render", help="print a k8s/ overlay's manifests with image, storage, GPUs, model set (kubectl apply -f -)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C and SIGTERM unwind the command (its `finally` blocks close engines and a local Ray) and end it
    # within a few seconds even when Ray does not let go (core.interrupts).
    restore = interrupts.install()
    try:
        return _dispatch(args)
    finally:
        restore()


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "config" and args.reference:
            _reference_alone(args)
            sys.stdout.write(config_reference())
        elif args.command == "config":
            sys.stdout.write(dump_config(_config(args)))
        elif args.command == "check-seeds":
            _check_seeds(args)
        elif args.command == "data":
            from alma.commands.data import data_main

            return data_main(args.file, args.kind, _seed_rules(args), args.json)
        elif args.command == "run":
            from alma.commands.report import finish_run_report
            from alma.jobs.driver import run

            run(_config(args), force=args.force, finish=finish_run_report)
        elif args.command == "status":
            from alma.commands.status import status_main

            return status_main(args.run, args.json)
        elif args.command == "report":
            from alma.commands.report import report_main

            return report_main(args.run, args.out)
        elif args.command == "judge" and args.judge_command == "serve":
            _judge_serve(args)
        elif args.command == "judge" and args.judge_command == "score":
            _judge_score(args)
        elif args.command == "k8s" and args.k8s_command == "render":
            _k8s_render(args)
        elif args.command == "eval":
            from alma.commands.model_eval import model_eval_main

            return model_eval_main(args)
        elif args.command == "plan":
            from alma.commands.plan import plan_main

            return plan_main(args)
        elif args.command == "judge" and args.judge_command == "eval":
            from alma.commands.judge_eval import judge_eval_main

            return judge_eval_main(args)
    except AlmaError as e:
        print(f"alma: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt as e:
        print("alma: interrupted; committed stages are kept, run the same command to resume", file=sys.stderr)
        return 143 if isinstance(e, interrupts.Terminated) else 130  # 128 + the signal, as a shell reports it
    except BrokenPipeError:
        # The reader went away (`alma status RUN | head`): stop quietly, as other command-line tools do,
        # and keep Python's exit-time flush from printing a second error about the same pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the signal
    return 0


if __name__ == "__main__":
    sys.exit(main())
