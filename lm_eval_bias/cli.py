"""`lm-eval-bias` command line: one class per subcommand, each owning its parser, examples and
handler (the shape of lm-eval's own `_cli/`). Heavy imports happen inside the handlers, so
`lm-eval-bias --help` is instant."""

from __future__ import annotations

import argparse
import os
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
lm-eval-bias compare runs/rtp_profanity runs/rtp_toxic_bert --allow-different-scorers
"""

    def add_arguments(self, parser):
        parser.add_argument("base", help="lm-eval --output_path folder of the reference run")
        parser.add_argument("other", help="lm-eval --output_path folder of the run to compare")
        parser.add_argument("--output-json", metavar="FILE", help="write the full comparison as JSON")
        parser.add_argument("--output-md", metavar="FILE", help="write the comparison as Markdown")
        parser.add_argument("--allow-different-scorers", action="store_true",
                            help="compare generation tasks scored by different toxicity scorers "
                                 "(refused by default; the differences are listed)")
        parser.add_argument("--allow-different-backends", action="store_true",
                            help="pair runs of different engines (vllm against hf / hf-quant; "
                                 "refused by default: their numerical differences would count "
                                 "as flips)")

    def run(self, args):
        from lm_eval_bias.analysis.compare import (
            check_output_file,
            compare_run_folders,
            render_terminal,
            write_json,
            write_markdown,
        )

        from lm_eval_bias.analysis.output import refuse_output_inside_inputs

        # bad output paths fail before any work, so nothing is written half-way
        refuse_output_inside_inputs([args.output_json, args.output_md], [args.base, args.other])
        for out in (args.output_json, args.output_md):
            if out:
                check_output_file(out)
        result = compare_run_folders(args.base, args.other,
                                     allow_different_scorers=args.allow_different_scorers,
                                     allow_different_backends=args.allow_different_backends)
        # the files first, the terminal last: a closed pipe (`| head`) cannot cost the files
        if args.output_json:
            write_json(result, args.output_json)
        if args.output_md:
            write_markdown(result, args.output_md)
        print(render_terminal(result))
        if result.get("scorer_differences"):
            d = result["scorer_differences"][0]
            print(f"note: scored by different scorers (allowed), e.g. task {d['task']}: "
                  f"{d['base']} in BASE, {d['other']} in OTHER", file=sys.stderr)
        if result.get("backend_difference"):
            d = result["backend_difference"]
            print(f"note: different backends (allowed): BASE ran on {d['base_engine']} "
                  f"(--model {d['base']}), OTHER on {d['other_engine']} (--model {d['other']}); "
                  "numerical differences between them count as flips", file=sys.stderr)
        for out in (args.output_json, args.output_md):
            if out:
                print(f"wrote {out}")
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


class Report(Subcommand):
    name = "report"
    help = ("Report over any number of lm-eval runs (one model at several precisions, or several "
            "models and methods): scores with bootstrap CIs, item-level change with McNemar + "
            "Benjamini-Hochberg, masked flipping, uncertainty, group asymmetry, dose-response, "
            "seeds; writes report.json, report.md, report.html and plots.")
    examples = """
lm-eval-bias report runs/bf16 runs/w8 runs/w4 runs/w3 --output report/
lm-eval-bias report runs/* --output report/ --reference runs/bf16 --n-boot 2000 --seed 1
"""

    def add_arguments(self, parser):
        parser.add_argument("runs", nargs="+", metavar="RUN",
                            help="lm-eval --output_path folders (or results_*.json files)")
        parser.add_argument("--output", required=True, metavar="DIR",
                            help="folder for report.json, report.md, report.html and plots/")
        parser.add_argument("--reference", metavar="RUN",
                            help="the reference run (default: the unquantized one)")
        parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                            help="bootstrap resamples for confidence intervals (default 1000)")
        parser.add_argument("--seed", type=int, default=0, metavar="S",
                            help="seed of the bootstrap (default 0)")
        parser.add_argument("--allow-different-scorers", action="store_true",
                            help="pair runs whose generation tasks were scored by different "
                                 "toxicity scorers (refused by default; named in the notes)")
        parser.add_argument("--allow-different-backends", action="store_true",
                            help="pair runs of different engines (vllm against hf / hf-quant; "
                                 "refused by default: their numerical differences would count "
                                 "as flips)")

    def run(self, args):
        from lm_eval_bias.analysis.formatting import num, pct
        from lm_eval_bias.analysis.output import refuse_output_inside_inputs
        from lm_eval_bias.analysis.report import build_report_from_folders, write_report

        refuse_output_inside_inputs([args.output], [*args.runs, args.reference])
        report = build_report_from_folders(args.runs, reference=args.reference,
                                           n_boot=args.n_boot, seed=args.seed,
                                           allow_different_scorers=args.allow_different_scorers,
                                           allow_different_backends=args.allow_different_backends)
        files = write_report(report, args.output)
        ref = report["reference"]
        print(f"reference: {ref['condition']} {ref['label']} ({len(ref['runs'])} run"
              f"{'s' if len(ref['runs']) > 1 else ''}, chosen by {ref['chosen_by']})")
        for row in report["summary"]["conditions"]:
            print(f"{row['condition']} {row['label']}: {row['n_paired']} items, response flips "
                  f"{pct(row['response_flip_rate'])}, became biased "
                  f"{pct(row['u2b_rate_of_unbiased'])}, net {pct(row['net_change'], True)}, "
                  f"masked {pct(row['masked_share_groups'])}")
        dr = report["dose_response"]["all_tasks"]
        if dr["odds_ratio"] is not None:
            print(f"dose-response: odds ratio {num(dr['odds_ratio'])} per bit removed "
                  f"[{num(dr['odds_ratio_ci_low'])}, {num(dr['odds_ratio_ci_high'])}], "
                  f"p={num(dr['pvalue'])} ({dr['method']})"
                  + (f"; {dr['note']}" if dr["note"] else ""))
        else:
            print(f"dose-response: not estimable: {dr['note']}")
        for key in ("json", "md", "html"):
            print(f"wrote {files[key]}")
        n_plots = sum(1 for k in files if k.startswith("plot:"))
        print(f"wrote {n_plots} plots in {files['json'].parent / 'plots'}")
        return 0


class Export(Subcommand):
    name = "export"
    help = ("Write a leaderboard submission: model and revision (or weights hash), quantization "
            "record, versions, task hashes, every score, per-group figures, item-level change "
            "against a reference run, and a digest of every samples file.")
    examples = """
lm-eval-bias export runs/w4 --reference runs/bf16 --output submission.json
lm-eval-bias export runs/w4 --output submission.json --weights /models/my-4bit
"""

    def add_arguments(self, parser):
        parser.add_argument("run", metavar="RUN", help="lm-eval --output_path folder of the run")
        parser.add_argument("--reference", metavar="RUN",
                            help="the reference (unquantized) run, for the item-level change")
        parser.add_argument("--output", required=True, metavar="FILE",
                            help="submission JSON to write")
        parser.add_argument("--weights", metavar="DIR",
                            help="local checkpoint folder to hash, when the run's pretrained= "
                                 "path is not on this machine")
        parser.add_argument("--reference-weights", metavar="DIR",
                            help="the same for the reference run")
        parser.add_argument("--open-llm-leaderboard", metavar="FILE",
                            help="also write the results file Hugging Face leaderboards read "
                                 "(config.model_name / model_sha / model_dtype, "
                                 "results[task][metric]; docs/leaderboard.md)")
        parser.add_argument("--allow-different-backends", action="store_true",
                            help="pair runs of different engines (vllm against hf / hf-quant; "
                                 "refused by default: their numerical differences would count "
                                 "as flips)")

    def run(self, args):
        from lm_eval_bias.analysis.output import (
            check_output_file,
            refuse_output_inside_inputs,
            write_json,
        )
        from lm_eval_bias.analysis.submission import (
            export_submission,
            open_llm_leaderboard_results,
            submission_marks,
        )

        outputs = [args.output, args.open_llm_leaderboard]
        refuse_output_inside_inputs(outputs, [args.run, args.reference, args.weights,
                                              args.reference_weights])
        for out in outputs:
            if out:
                check_output_file(out)
        notes: list[str] = []
        doc = export_submission(args.run, args.output, reference_path=args.reference,
                                weights=args.weights, reference_weights=args.reference_weights,
                                allow_different_backends=args.allow_different_backends,
                                notes=notes)
        if args.open_llm_leaderboard:
            write_json(open_llm_leaderboard_results(doc), args.open_llm_leaderboard)
        n_files = len(doc["files"]["samples"])
        ref = " against a reference run" if doc["reference"] else ""
        print(f"wrote {args.output}: {doc['model']['name']}, {len(doc['tasks'])} tasks, "
              f"{n_files} samples files digested{ref}{submission_marks(doc)}")
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.open_llm_leaderboard:
            print(f"wrote {args.open_llm_leaderboard}: leaderboard results (config, results per "
                  "task and metric)")
        return 0


class Verify(Subcommand):
    name = "verify"
    help = ("Check a submission: schema, samples-file digests, every number recomputed from the "
            "samples, task versions and hashes against the tasks installed here. Exit 1 on any "
            "mismatch.")
    examples = """
lm-eval-bias verify submission.json --runs runs/w4 runs/bf16
lm-eval-bias verify submission.json --runs runs/w4
lm-eval-bias verify submission.json --runs runs/w4 runs/bf16 --rerun 20 --seed 1
"""

    def add_arguments(self, parser):
        parser.add_argument("submission", metavar="SUBMISSION", help="the file export wrote")
        parser.add_argument("--runs", nargs="+", required=True, metavar="RUN",
                            help="the run folder, then the reference run folder if the "
                                 "submission has one")
        parser.add_argument("--weights", metavar="DIR", help="local checkpoint folder to hash")
        parser.add_argument("--reference-weights", metavar="DIR",
                            help="local checkpoint folder of the reference run")
        group = parser.add_argument_group(
            "rerun", "re-evaluate random items with the declared model, revision and "
                     "quantization (lm-eval's evaluator) and compare them with the samples files")
        group.add_argument("--rerun", type=int, metavar="N",
                           help="number of documents to rerun (of the run, and the same of its "
                                "reference)")
        group.add_argument("--seed", type=int, default=0, metavar="S",
                           help="seed of the draw of the documents (default 0)")
        group.add_argument("--tolerance", type=float, default=None, metavar="T",
                           help="log-likelihoods, probabilities and scores agree when "
                                "math.isclose(a, b, rel_tol=T, abs_tol=T) (default 1e-3)")
        group.add_argument("--device", metavar="DEV",
                           help="lm-eval --device of the rerun (default: the run's)")
        group.add_argument("--batch-size", metavar="B",
                           help="lm-eval --batch_size of the rerun (default: the run's)")
        parser.add_argument("--allow-different-backends", action="store_true",
                            help="pair runs of different engines (vllm against hf / hf-quant; "
                                 "refused by default: their numerical differences would count "
                                 "as flips)")

    def run(self, args):
        from lm_eval_bias.analysis.verify import verify_submission

        if args.rerun is not None and args.rerun < 1:
            raise BiasEvalError(f"--rerun takes a number of documents >= 1, got {args.rerun}")
        if args.tolerance is not None and not args.tolerance >= 0:  # NaN too
            raise BiasEvalError(f"--tolerance takes a number >= 0, got {args.tolerance}")
        res = verify_submission(args.submission, args.runs, weights=args.weights,
                                reference_weights=args.reference_weights,
                                allow_different_backends=args.allow_different_backends)
        for m in res.mismatches:
            print(f"MISMATCH {m.line()}")
        for note in res.notes:
            print(f"note: {note}", file=sys.stderr)
        print(res.summary())
        if args.rerun is None:
            return 0 if res.ok else 1
        if not res.ok:
            print("rerun: not run, the submission does not verify", file=sys.stderr)
            return 1
        return self._rerun(args, res.submission)

    @staticmethod
    def _rerun(args, submission) -> int:
        from lm_eval_bias.rerun import DEFAULT_TOLERANCE, rerun_submission, verdict

        tol = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
        reports = rerun_submission(submission, args.runs, args.rerun, seed=args.seed,
                                   tolerance=tol, weights=args.weights,
                                   reference_weights=args.reference_weights,
                                   device=args.device, batch_size=args.batch_size)
        for report in reports:
            for line in report.mismatches:
                print(f"RERUN MISMATCH {report.side}: {line}")
            for note in report.notes:
                print(f"note: rerun {report.side}: {note}", file=sys.stderr)
        print(verdict(reports, tol, args.seed))
        return 1 if any(r.mismatches for r in reports) else 0


class Leaderboard(Subcommand):
    name = "leaderboard"
    help = ("Build a static, self-contained leaderboard page (site/index.html) from a folder of "
            "submissions, verifying each.")
    examples = """
lm-eval-bias leaderboard submissions/ --output site/
# submissions/<name>/submission.json with <name>/run/ and <name>/reference/ next to it
"""

    def add_arguments(self, parser):
        parser.add_argument("submissions", metavar="SUBMISSIONS_DIR",
                            help="folder of submissions (see the module docs)")
        parser.add_argument("--output", required=True, metavar="DIR",
                            help="folder to write index.html into")
        parser.add_argument("--no-plots", action="store_true",
                            help="leave the report plots out of the detail views")

    def run(self, args):
        from lm_eval_bias.analysis.leaderboard import build_leaderboard
        from lm_eval_bias.analysis.output import refuse_output_inside_inputs

        refuse_output_inside_inputs([args.output], [args.submissions])
        result = build_leaderboard(args.submissions, args.output, plots=not args.no_plots)
        for entry in result["entries"]:
            print(f"{entry['status']:<10} {entry['id']}: {entry['message']}")
        print(f"wrote {result['index']}: {result['n_listed']} listed, "
              f"{result['n_unverified']} unverified, {result['n_skipped']} skipped")
        return 0


class Quantize(Subcommand):
    name = "quantize"
    help = ("Write a real quantized checkpoint (compressed-tensors with llmcompressor, or GPTQ "
            "with gptqmodel) that lm_eval --model hf / vllm / hf-quant load unchanged.")
    examples = """
lm-eval-bias quantize HuggingFaceTB/SmolLM2-135M --method rtn --scheme W4A16 --group-size 64 \\
    --output ckpt/smollm2-w4a16-g64
lm-eval-bias quantize /models/llama --method smoothquant --scheme W8A8 --calib wikitext2 \\
    --output ckpt/llama-w8a8 --python ~/.cache/lm_eval_bias/llmcompressor-venv/bin/python
lm-eval-bias quantize /models/llama --method gptq --scheme W4A16 --format gptq --calib c4.jsonl \\
    --output ckpt/llama-gptq
"""

    def add_arguments(self, parser):
        from lm_eval_bias.models.quantize_checkpoint import FORMATS, METHODS, SCHEMES

        parser.add_argument("model", metavar="MODEL", help="checkpoint folder or hub id")
        parser.add_argument("--method", required=True, choices=METHODS)
        parser.add_argument("--scheme", required=True, choices=list(SCHEMES),
                            help="W4A16 / W8A16: int weights, 16-bit activations; W8A8: int8 "
                                 "weights and dynamic per-token int8 activations")
        parser.add_argument("--group-size", "--group_size", type=int, metavar="N",
                            help="input features per weight scale; -1: one per output row "
                                 "(default: 128 for W4A16, -1 for W8A16 and W8A8)")
        parser.add_argument("--asym", action="store_true",
                            help="asymmetric weights (integer zero points); default symmetric")
        parser.add_argument("--ignore", default="lm_head", metavar="LIST",
                            help="comma-separated modules kept in full precision (default "
                                 "lm_head; 'none' for none)")
        parser.add_argument("--format", default="compressed-tensors", dest="fmt",
                            choices=FORMATS, help="checkpoint format (default compressed-tensors)")
        parser.add_argument("--calib", metavar="NAME|PATH",
                            help="calibration text of gptq, awq, smoothquant: wikitext2 "
                                 "(default), c4, or a .txt / .jsonl file")
        parser.add_argument("--n-calib", type=int, default=128, metavar="N",
                            help="calibration windows (default 128)")
        parser.add_argument("--calib-len", type=int, default=512, metavar="T",
                            help="tokens per calibration window (default 512)")
        parser.add_argument("--calib-seed", type=int, default=0, metavar="S",
                            help="seed of the window draw (default 0)")
        parser.add_argument("--python", metavar="PATH",
                            help="interpreter with llmcompressor that runs the quantization step "
                                 "(default: this one if it has llmcompressor, else the side "
                                 "environment in the cache folder)")
        parser.add_argument("--output", required=True, metavar="DIR",
                            help="new folder for the checkpoint")

    def run(self, args):
        from pathlib import Path

        from lm_eval_bias.models.quantize_checkpoint import (
            RECORD_FILE,
            QuantizeSpec,
            quantize_checkpoint,
        )

        ignore = tuple(x.strip() for x in args.ignore.split(",") if x.strip())
        spec = QuantizeSpec(
            model=args.model, output=Path(args.output), method=args.method, scheme=args.scheme,
            fmt=args.fmt, group_size=args.group_size, symmetric=not args.asym,
            ignore=() if ignore == ("none",) else ignore, calib=args.calib,
            n_calib=args.n_calib, calib_len=args.calib_len, calib_seed=args.calib_seed,
            python=args.python)
        record = quantize_checkpoint(spec, argv=sys.argv[2:] if len(sys.argv) > 2 else None,
                                     log=lambda text: print(text, flush=True))
        print(f"wrote {args.output}: {record['format']} {record['scheme']} ({record['method']}, "
              f"group size {record['group_size']}) with {record['library']} "
              f"{record['versions'].get(record['library'])} in {record['seconds']:.1f} s; "
              f"record in {RECORD_FILE}")
        return 0


class Sweep(Subcommand):
    name = "sweep"
    help = ("One model at several quantization settings (and seeds): every setting through "
            "lm-eval's evaluator into its own run folder, the full-precision weights loaded once, "
            "resumable, then the report over all runs.")
    examples = """
lm-eval-bias sweep --model-args pretrained=HuggingFaceTB/SmolLM2-135M \\
    --settings none,rtn:8:g64,rtn:4:g64,rtn:3:g64,nf4 --tasks bias_suite_lite --output runs/study
lm-eval-bias sweep --model-args pretrained=/models/llama,dtype=bfloat16 --settings none,rtn:4 \\
    --tasks bias_bbq --output runs/seeds --seeds 0,1,2 --limit 100 --device cuda
lm-eval-bias sweep ... --plan      # print the lm_eval commands and the report command, run nothing
"""

    def add_to(self, subparsers) -> None:
        super().add_to(subparsers)
        from lm_eval_bias.sweep import SETTINGS_HELP

        # the settings grammar after the examples, where a user looks for it
        parser = subparsers.choices[self.name]
        parser.epilog = (parser.epilog or "") + "\n\n" + SETTINGS_HELP

    def add_arguments(self, parser):
        parser.add_argument("--model-args", "--model_args", required=True, metavar="ARGS",
                            help="hf-quant model_args without quantization, e.g. "
                                 "pretrained=PATH,dtype=float32")
        parser.add_argument("--settings", required=True, metavar="LIST",
                            help="comma-separated settings, e.g. none,rtn:8,rtn:4:g64,nf4 "
                                 "(grammar below); must include none")
        parser.add_argument("--tasks", required=True, metavar="TASKS",
                            help="lm-eval tasks or groups, comma-separated")
        parser.add_argument("--output", required=True, metavar="DIR",
                            help="sweep folder: sweep.json, one run folder per setting (and "
                                 "seed), report/")
        parser.add_argument("--seeds", metavar="LIST",
                            help="run every setting once per seed, e.g. 0,1,2 (lm_eval --seed K); "
                                 "default: lm-eval's default seeds, one run per setting")
        parser.add_argument("--limit", type=float, metavar="N",
                            help="lm-eval --limit: first N documents per task (for testing)")
        parser.add_argument("--batch-size", "--batch_size", default=None, metavar="B",
                            help="lm-eval --batch_size (default 1; auto with --backend vllm)")
        parser.add_argument("--device", metavar="DEV",
                            help="lm-eval --device, e.g. cpu, cuda, cuda:0 (default: cuda when "
                                 "available, else cpu)")
        parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                            help="bootstrap resamples of the report (default 1000)")
        parser.add_argument("--plan", action="store_true",
                            help="print one lm_eval command per run and the report command; "
                                 "run nothing")
        self._add_backend_arguments(parser)
        self._add_lm_eval_arguments(parser)

    @staticmethod
    def _add_backend_arguments(parser):
        group = parser.add_argument_group(
            "backend", "hf-quant (default): every setting in this process, quantized by "
                       "hf-quant. vllm: real checkpoints written by lm-eval-bias quantize, "
                       "evaluated by lm_eval --model vllm (with --plan: print the commands)")
        group.add_argument("--backend", choices=["hf-quant", "vllm"], default="hf-quant")
        group.add_argument("--checkpoints", metavar="DIR",
                           help="vllm: folder of the quantized checkpoints (default "
                                "OUTPUT/checkpoints)")
        for name, kind in (("tensor_parallel_size", int), ("data_parallel_size", int),
                           ("gpu_memory_utilization", float)):
            group.add_argument(f"--{name.replace('_', '-')}", f"--{name}", dest=name, type=kind,
                               metavar="N", help=f"vllm: {name}= in every run's model_args")

    @staticmethod
    def _add_lm_eval_arguments(parser):
        group = parser.add_argument_group(
            "lm-eval options", "passed unchanged to every run (lm_eval run's own meaning)")
        group.add_argument("--apply_chat_template", "--apply-chat-template", nargs="?",
                           const=True, default=None, metavar="TEMPLATE")
        group.add_argument("--system_instruction", "--system-instruction", metavar="TEXT")
        group.add_argument("--fewshot_as_multiturn", "--fewshot-as-multiturn", nargs="?",
                           const=True, default=None, metavar="BOOL")
        group.add_argument("--num_fewshot", "--num-fewshot", metavar="N")
        group.add_argument("--gen_kwargs", "--gen-kwargs", metavar="ARGS")
        group.add_argument("--metadata", metavar="JSON|ARGS")
        group.add_argument("--include_path", "--include-path", metavar="DIR")
        group.add_argument("--hf_hub_log_args", "--hf-hub-log-args", metavar="ARGS",
                           help="each run gets its own repository names (suffixed by its "
                                "folder)")

    def run(self, args):
        from lm_eval_bias.sweep import (
            LM_EVAL_OPTIONS,
            VLLM_OPTIONS,
            make_spec,
            plan_lines,
            run_sweep,
        )

        spec = make_spec(model_args=args.model_args, settings=args.settings, tasks=args.tasks,
                         output=args.output, seeds=args.seeds, limit=args.limit,
                         batch_size=args.batch_size, device=args.device,
                         lm_eval_options={flag[2:]: getattr(args, flag[2:])
                                          for flag, _ in LM_EVAL_OPTIONS},
                         backend=args.backend, checkpoints=args.checkpoints,
                         vllm_args={k: getattr(args, k) for k in VLLM_OPTIONS})
        if args.plan:
            print("\n".join(plan_lines(spec, n_boot=args.n_boot)))
            return 0
        if spec.backend == "vllm":
            raise BiasEvalError("--backend vllm runs only as --plan for now: add --plan and run "
                                "the printed commands on the GPU machine")
        run_sweep(spec, n_boot=args.n_boot, log=lambda text: print(text, flush=True))
        return 0


SUBCOMMANDS = [Compare(), Demo(), Report(), Export(), Verify(), Leaderboard(), Quantize(),
               Sweep()]


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
    except BrokenPipeError:
        # the reader of our output went away (`| head`): files are written before the terminal
        # output, so nothing is lost; silence the interpreter's own flush error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BiasEvalError as exc:
        print(f"lm-eval-bias: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lm-eval-bias: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
