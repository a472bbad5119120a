"""`lm-eval-bias` command line: one class per subcommand, each owning its parser, examples and
handler (the shape of lm-eval's own `_cli/`). Heavy imports happen inside the handlers, so
`lm-eval-bias --help` is instant."""

from __future__ import annotations

import argparse
import sys
import textwrap

from lm_eval_bias.errors import BiasEvalError


class Subcommand:
    name: str = ""
    help: str = ""
    examples: str = ""

    def add_to(self, subparsers) -> None:
        parser = subparsers.add_parser(
            self.name, help=self.help, description=self.help,
            epilog="examples:\n" + textwrap.indent(self.examples.strip(), "  "),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_arguments(parser)
        parser.set_defaults(handler=self.run)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class Compare(Subcommand):
    name = "compare"
    help = "Item-level comparison of two lm-eval runs (flips, bias emergence, per group)."
    examples = """
lm-eval-bias compare runs/fp32 runs/w4
lm-eval-bias compare runs/fp32 runs/w4 --output-json cmp.json --output-md cmp.md
"""

    def add_arguments(self, parser):
        parser.add_argument("base", help="lm-eval --output_path folder of the reference run")
        parser.add_argument("other", help="lm-eval --output_path folder of the run to compare")
        parser.add_argument("--output-json", metavar="FILE", help="write the full comparison as JSON")
        parser.add_argument("--output-md", metavar="FILE", help="write the comparison as Markdown")

    def run(self, args):
        from lm_eval_bias.analysis.compare import compare_run_folders, render_markdown, render_terminal, write_json

        result = compare_run_folders(args.base, args.other)
        print(render_terminal(result))
        if args.output_json:
            write_json(result, args.output_json)
            print(f"wrote {args.output_json}")
        if args.output_md:
            with open(args.output_md, "w", encoding="utf-8") as fh:
                fh.write(render_markdown(result))
            print(f"wrote {args.output_md}")
        return 0


class Demo(Subcommand):
    name = "demo"
    help = ("Offline end-to-end run: SmolLM2-135M-Instruct at full precision and RTN 4-bit on a "
            "BBQ sample, then compare.")
    examples = """
lm-eval-bias demo
lm-eval-bias demo --output demo_runs --per-category 8
"""

    def add_arguments(self, parser):
        parser.add_argument("--output", default="lm_eval_bias_demo", help="folder for runs and report")
        parser.add_argument("--per-category", type=int, default=None,
                            help="use only the first N sample items of each BBQ category")
        parser.add_argument("--batch-size", default="8", help="lm-eval batch size")

    def run(self, args):
        from lm_eval_bias.demo import run_demo

        return run_demo(output=args.output, per_category=args.per_category, batch_size=args.batch_size)


SUBCOMMANDS = [Compare(), Demo()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lm-eval-bias",
        description="Measure how quantization changes the social biases of language models.",
    )
    from lm_eval_bias import __version__

    parser.add_argument("--version", action="version", version=f"lm-eval-bias {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for sub in SUBCOMMANDS:
        sub.add_to(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except BiasEvalError as exc:
        print(f"lm-eval-bias: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lm-eval-bias: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
