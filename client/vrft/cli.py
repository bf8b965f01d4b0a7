"""``vrft`` — command line for the vrft fine-tuning service.

Configuration: ``--api-key``/``$VRFT_API_KEY``, ``--base-url``/``$VRFT_BASE_URL``. Human tables on
stdout by default, ``--json`` for scripts; progress bars go to stderr (only on a terminal, or with
``--progress``).

Exit codes:
  0  success
  1  the API answered with an error (4xx/5xx; the message and code are printed on stderr)
  2  usage error (bad flags, unreadable spec/grader file, invalid JSON)
  3  the job failed (``jobs wait``; also ``jobs create --wait``)
  4  could not reach the server (connection error or timeout, after retries)
  5  the job was cancelled (``jobs wait``)
  6  ``jobs wait --timeout`` expired before the job finished
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vrft._client import Client
from vrft._version import __version__
from vrft.compare import metric_names
from vrft.errors import (
    APIConnectionError,
    APIStatusError,
    JobCancelledError,
    JobFailedError,
    VrftError,
    WaitTimeoutError,
)
from vrft.types import FileObject, FineTuningJob, JobComparison, JobEvent, VrftObject

# A subcommand: the client (None for the offline `datasets` commands) and the parsed flags → exit code.
Command = Callable[[Any, argparse.Namespace], int]

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_JOB_FAILED, EXIT_CONNECTION, EXIT_CANCELLED, EXIT_WAIT_TIMEOUT = 0, 1, 2, 3, 4, 5, 6
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad local input: exit code 2."""


# -- output -----------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, VrftObject):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def emit_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2, ensure_ascii=False))


def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def details(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {_cell(value)}")


def _job_progress(job: FineTuningJob) -> str:
    if job.progress is None or not job.progress.total_steps:
        return "-"
    return f"{job.progress.step or 0}/{job.progress.total_steps}"


def show_file(f: FileObject) -> None:
    details([("id", f.id), ("filename", f.filename), ("bytes", f.bytes), ("purpose", f.purpose),
             ("status", f.status), ("format", f.format), ("rows", f.rows), ("created", _when(f.created_at)),
             ("details", f.status_details)])


def show_job(job: FineTuningJob) -> None:
    error = job.error
    pairs = [("id", job.id), ("status", job.status), ("model", job.model), ("training_file", job.training_file),
             ("validation_file", job.validation_file), ("progress", _job_progress(job)),
             ("latest_reward", job.latest_reward), ("queue_position", job.queue_position),
             ("fine_tuned_model", job.fine_tuned_model), ("created", _when(job.created_at)),
             ("finished", _when(job.finished_at))]
    if job.dry_run:
        pairs.append(("dry_run", True))
    if error is not None and (error.code or error.message):
        pairs.append(("error", f"{error.code}: {error.message}" + (f" (param {error.param})" if error.param else "")))
    details(pairs)


def print_event(ev: JobEvent, as_json: bool) -> None:
    if as_json:
        print(json.dumps(ev.to_dict(), ensure_ascii=False), flush=True)
        return
    message = ev.message or ""
    if ev.type == "metrics" and ev.data:
        keys = ("step", "reward_mean", "reward_std", "kl", "loss", "train_mean_token_accuracy")  # RFT; SFT
        summary = " ".join(f"{k}={_cell(ev.data[k])}" for k in keys if k in ev.data)
        message = f"{message} {summary}".strip()
    print(f"{_when(ev.created_at)}  {(ev.level or 'info'):<7} {message}", flush=True)


# -- input ------------------------------------------------------------------------------------------
def load_structured(value: str, what: str) -> Any:
    """JSON text, or a path to a JSON/YAML file."""
    path = Path(value).expanduser()
    text: str
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise UsageError(f"{what}: reading YAML needs PyYAML (pip install 'vrft-client[yaml]')") from None
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise UsageError(f"{what}: {path} is not valid YAML: {exc}") from None
    else:
        text = value
    try:
        return json.loads(text)
    except ValueError as exc:
        source = str(path) if path.is_file() else "the argument"
        raise UsageError(f"{what}: {source} is neither an existing file nor valid JSON ({exc})") from None


def _object(value: str, what: str) -> dict[str, Any]:
    loaded = load_structured(value, what)
    if not isinstance(loaded, dict):
        raise UsageError(f"{what} must be a JSON object")
    return loaded


# -- commands ---------------------------------------------------------------------------------------
def cmd_files_upload(client: Client, args: argparse.Namespace) -> int:
    f = client.files.upload(args.path, purpose=args.purpose, filename=args.filename, progress=args.progress)
    if args.wait and f.status == "uploaded":
        f = client.files.wait_processed(f.id)
    if args.json:
        emit_json(f)
    else:
        show_file(f)
    return EXIT_OK if f.status != "error" else EXIT_API


def cmd_files_list(client: Client, args: argparse.Namespace) -> int:
    pager = client.files.list(purpose=args.purpose, limit=args.limit)
    items = list(pager) if args.all else pager.data
    if args.json:
        emit_json(items)
    else:
        table([(f.id, f.filename, f.bytes, f.status, f.format, f.rows, _when(f.created_at)) for f in items],
              ["id", "filename", "bytes", "status", "format", "rows", "created"])
    return EXIT_OK


def cmd_files_show(client: Client, args: argparse.Namespace) -> int:
    f = client.files.retrieve(args.file_id)
    emit_json(f) if args.json else show_file(f)
    return EXIT_OK


def cmd_files_rm(client: Client, args: argparse.Namespace) -> int:
    result = client.files.delete(args.file_id)
    emit_json(result) if args.json else print(f"deleted {result.id}")
    return EXIT_OK


def cmd_files_validation(client: Client, args: argparse.Namespace) -> int:
    report = client.files.validation(args.file_id)
    if args.json:
        emit_json(report)
        return EXIT_OK
    details([("file", report.file_id), ("status", report.status), ("format", report.format),
             ("rows_read", report.rows_read), ("rows_valid", report.rows_valid), ("images", report.image_count),
             ("fields", ", ".join(report.reference_fields)), ("problems", report.problem_count)])
    if report.problems:
        print()
        table([(p.line, p.field, p.code, p.message) for p in report.problems], ["line", "field", "code", "message"])
    return EXIT_OK


def cmd_files_content(client: Client, args: argparse.Namespace) -> int:
    if args.output in (None, "-"):
        sys.stdout.buffer.write(client.files.content(args.file_id))  # type: ignore[arg-type]
        sys.stdout.flush()
    else:
        path = client.files.content(args.file_id, dest=args.output)
        print(path, file=sys.stderr)
    return EXIT_OK


def _maybe_upload(client: Client, value: str | None, progress: bool) -> str | None:
    """A file id passes through; an existing local path is uploaded first."""
    if value is None or value.startswith("file-"):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        return value  # let the server say it does not exist
    f = client.files.upload(path, progress=progress)
    if f.status == "uploaded":
        f = client.files.wait_processed(f.id)
    print(f"uploaded {path} as {f.id} ({f.status})", file=sys.stderr)
    return f.id


def cmd_jobs_create(client: Client, args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {}
    if args.spec:
        spec = _object(args.spec, "--spec")
        allowed = {"model", "training_file", "validation_file", "grader", "hyperparameters", "suffix", "seed",
                   "metadata", "dry_run", "dry_run_samples", "method", "method_type", "gpus"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise UsageError(f"--spec: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for name in ("model", "training_file", "validation_file", "suffix", "seed"):
        value = getattr(args, name)
        if value is not None:
            spec[name] = value
    if args.grader is not None:
        spec["grader"] = _object(args.grader, "--grader")
    elif isinstance(spec.get("grader"), str):
        spec["grader"] = _object(spec["grader"], "grader")
    if args.hyperparameters is not None:
        spec["hyperparameters"] = _object(args.hyperparameters, "--hyperparameters")
    if args.metadata:
        meta = dict(spec.get("metadata") or {})
        for item in args.metadata:
            key, sep, val = item.partition("=")
            if not sep:
                raise UsageError(f"--metadata expects KEY=VALUE, got {item!r}")
            meta[key] = val
        spec["metadata"] = meta
    if args.dry_run:
        spec["dry_run"] = True
    if args.method is not None:
        spec["method_type"] = args.method
    if args.gpus is not None:
        spec["gpus"] = args.gpus
    for required in ("model", "training_file"):
        if not spec.get(required):
            raise UsageError(f"jobs create needs --{required.replace('_', '-')} (or '{required}' in --spec)")
    if not spec.get("grader") and not spec.get("method") and spec.get("method_type") != "supervised":
        raise UsageError("a reinforcement job needs --grader (or 'grader' in --spec); --method supervised needs none")
    spec["training_file"] = _maybe_upload(client, spec["training_file"], args.progress)
    spec["validation_file"] = _maybe_upload(client, spec.get("validation_file"), args.progress)
    job = client.jobs.create(**spec)
    if args.wait:
        print(f"created {job.id}", file=sys.stderr)
        return _wait(client, job.id, args)
    emit_json(job) if args.json else show_job(job)
    return EXIT_OK


def cmd_jobs_list(client: Client, args: argparse.Namespace) -> int:
    pager = client.jobs.list(limit=args.limit, status=args.status)
    items = list(pager) if args.all else pager.data
    if args.json:
        emit_json(items)
    else:
        table([(j.id, j.status, j.model, _job_progress(j), j.latest_reward, j.fine_tuned_model, _when(j.created_at))
               for j in items], ["id", "status", "model", "progress", "reward", "fine_tuned_model", "created"])
    return EXIT_OK


def cmd_jobs_show(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.retrieve(args.job_id)
    emit_json(job) if args.json else show_job(job)
    return EXIT_OK


def _wait(client: Client, job_id: str, args: argparse.Namespace) -> int:
    try:
        job = client.jobs.wait(job_id, timeout=args.wait_timeout, progress=args.progress, raise_on_cancel=True)
    except JobFailedError as exc:
        emit_json(exc.job) if args.json else show_job(exc.job)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED
    except JobCancelledError as exc:
        emit_json(exc.job) if args.json else show_job(exc.job)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except WaitTimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WAIT_TIMEOUT
    emit_json(job) if args.json else show_job(job)
    return EXIT_OK


def cmd_jobs_wait(client: Client, args: argparse.Namespace) -> int:
    return _wait(client, args.job_id, args)


def cmd_jobs_events(client: Client, args: argparse.Namespace) -> int:
    for ev in client.jobs.events(args.job_id, follow=args.follow, type=args.type):
        print_event(ev, args.json)
    return EXIT_OK


def _transition(action: str) -> Command:
    def run(client: Client, args: argparse.Namespace) -> int:
        job = getattr(client.jobs, action)(args.job_id)
        emit_json(job) if args.json else show_job(job)
        return EXIT_OK
    return run


def _first_to_final(row: JobComparison, name: str) -> str:
    """``first -> final`` of one metric (the final value alone when the job was evaluated once)."""
    first, final = row.first, row.final
    if first is None or final is None:
        return "-"
    if first.step == final.step:
        return _cell(final.metrics.get(name))
    if name not in first.metrics and name not in final.metrics:
        return "-"
    return f"{_cell(first.metrics.get(name))} -> {_cell(final.metrics.get(name))}"


def cmd_jobs_compare(client: Client, args: argparse.Namespace) -> int:
    rows = client.jobs.compare(args.job_ids)
    if args.json:
        emit_json(rows)
        return EXIT_OK
    names = metric_names(rows)
    table([[r.id, r.method, r.model, r.status,
            f"{r.step or 0}/{r.total_steps}" if r.total_steps else "-",
            (f"{r.first.step} -> {r.final.step}" if r.first.step != r.final.step else str(r.final.step))
            if r.first and r.final else "-",
            *(_first_to_final(r, n) for n in names)] for r in rows],
          ["id", "method", "model", "status", "steps", "evals", *names])
    return EXIT_OK


def cmd_jobs_checkpoints(client: Client, args: argparse.Namespace) -> int:
    items = list(client.jobs.checkpoints(args.job_id, limit=100))
    if args.json:
        emit_json(items)
    else:
        table([(c.id, c.step_number, c.fine_tuned_model_checkpoint, _when(c.created_at)) for c in items],
              ["id", "step", "model", "created"])
    return EXIT_OK


def cmd_jobs_download(client: Client, args: argparse.Namespace) -> int:
    checkpoint: Any = args.checkpoint
    if checkpoint is not None and checkpoint.isdigit():
        checkpoint = int(checkpoint)
    path = client.jobs.download_adapter(args.job_id, args.output, checkpoint=checkpoint, extract=args.extract,
                                        progress=args.progress)
    emit_json({"path": str(path)}) if args.json else print(path)
    return EXIT_OK


def cmd_graders_validate(client: Client, args: argparse.Namespace) -> int:
    result = client.graders.validate(_object(args.grader, "grader"))
    print(json.dumps(result.grader, indent=2, ensure_ascii=False)) if not args.json else emit_json(result)
    return EXIT_OK


def cmd_graders_run(client: Client, args: argparse.Namespace) -> int:
    sample = args.sample
    if sample.startswith("@"):
        sample = Path(sample[1:]).read_text(encoding="utf-8")
    item = _object(args.item, "--item") if args.item else {}
    result = client.graders.run(_object(args.grader, "--grader"), sample, item)
    if args.json:
        emit_json(result)
    else:
        details([("reward", result.reward)] + [(f"  {k}", v) for k, v in result.sub_rewards.items()]
                + [("flags", ", ".join(k for k, v in result.errors.items() if v is True) or "none")])
    return EXIT_OK


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    items = list(client.models.list())
    if args.json:
        emit_json(items)
    else:
        table([(m.id, m.owned_by, getattr(m, "fine_tuning_job", None)) for m in items], ["id", "owned_by", "job"])
    return EXIT_OK


def cmd_datasets_coco(_client: Client | None, args: argparse.Namespace) -> int:
    from vrft.datasets import convert_coco

    path = convert_coco(args.annotations, args.images, args.output, categories=args.category or None,
                        shots=args.shots, seed=args.seed)
    emit_json({"path": str(path)}) if args.json else print(path)
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection and output")
    g.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (default $VRFT_API_KEY)")
    g.add_argument("--base-url", default=argparse.SUPPRESS, help="server URL (default $VRFT_BASE_URL or http://127.0.0.1:8000)")
    g.add_argument("--request-timeout", dest="request_timeout", type=float, default=argparse.SUPPRESS,
                   help="per-request timeout in seconds (default 60)")
    g.add_argument("--max-retries", type=int, default=argparse.SUPPRESS,
                   help="retries on 429/5xx/connection errors (default 2)")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON on stdout")
    g.add_argument("--progress", dest="progress", action="store_true", default=argparse.SUPPRESS,
                   help="progress bars on stderr even when it is not a terminal")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                   help="no progress bars")

    parser = argparse.ArgumentParser(prog="vrft", parents=[common],
                                     description="Command line for the vrft Visual-RFT fine-tuning service.",
                                     epilog="exit codes: 0 ok, 1 API error, 2 usage, 3 job failed, 4 connection "
                                            "error, 5 job cancelled, 6 wait timed out, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"vrft {__version__}")
    top = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, func: Command, help_text: str,
            **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text, **kw)
        p.set_defaults(func=func)
        return p

    # files
    files = top.add_parser("files", help="upload and inspect datasets").add_subparsers(dest="cmd", metavar="ACTION",
                                                                                        required=True)
    p = add(files, "upload", cmd_files_upload, "upload a dataset (JSONL, archive or Parquet)")
    p.add_argument("path")
    p.add_argument("--purpose", default="fine-tune")
    p.add_argument("--filename", help="name to store (default: the file's name)")
    p.add_argument("--wait", action="store_true", help="wait for background validation of large files")
    p = add(files, "list", cmd_files_list, "list files", aliases=["ls"])
    p.add_argument("--limit", type=int)
    p.add_argument("--purpose")
    p.add_argument("--all", action="store_true", help="every page, not just the first")
    p = add(files, "show", cmd_files_show, "show one file")
    p.add_argument("file_id")
    p = add(files, "rm", cmd_files_rm, "delete a file", aliases=["delete"])
    p.add_argument("file_id")
    p = add(files, "validation", cmd_files_validation, "the validation report of a file")
    p.add_argument("file_id")
    p = add(files, "content", cmd_files_content, "download a file's content")
    p.add_argument("file_id")
    p.add_argument("-o", "--output", help="destination (default: stdout)")

    # jobs
    jobs = top.add_parser("jobs", help="fine-tuning jobs").add_subparsers(dest="cmd", metavar="ACTION", required=True)
    p = add(jobs, "create", cmd_jobs_create, "create a fine-tuning job (reinforcement, or --method supervised)")
    p.add_argument("--spec", help="YAML/JSON file (or JSON text) with model, training_file, grader, "
                                  "hyperparameters, ...; flags override it")
    p.add_argument("--model", help="a base model, or an ft: model of this project to fine-tune further")
    p.add_argument("--training-file", help="file id, or a local path to upload first")
    p.add_argument("--validation-file", help="file id, or a local path to upload first")
    p.add_argument("--method", choices=("reinforcement", "supervised"),
                   help="training method (default reinforcement); a supervised job learns the files' answers")
    p.add_argument("--grader", help="grader as JSON text or a JSON/YAML file (supervised: optional, scores "
                                    "the validation file)")
    p.add_argument("--hyperparameters", help="hyperparameters as JSON text or a JSON/YAML file")
    p.add_argument("--suffix")
    p.add_argument("--seed", type=int)
    p.add_argument("--gpus", type=int, help="devices to train on, data-parallel (resources.gpus; default 1)")
    p.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    p.add_argument("--dry-run", action="store_true", help="sample and grade a few rollouts instead of training")
    p.add_argument("--wait", action="store_true", help="wait for the job to finish (exit code as `jobs wait`)")
    p.add_argument("--timeout", dest="wait_timeout", type=float, help="with --wait: give up after this many seconds")
    p = add(jobs, "list", cmd_jobs_list, "list jobs, newest first", aliases=["ls"])
    p.add_argument("--limit", type=int)
    p.add_argument("--status")
    p.add_argument("--all", action="store_true", help="every page, not just the first")
    p = add(jobs, "show", cmd_jobs_show, "show one job")
    p.add_argument("job_id")
    p = add(jobs, "wait", cmd_jobs_wait, "wait until a job ends (exit 0 succeeded, 3 failed, 5 cancelled, 6 timeout)")
    p.add_argument("job_id")
    p.add_argument("--timeout", dest="wait_timeout", type=float, help="give up after this many seconds (exit 6)")
    p = add(jobs, "events", cmd_jobs_events, "a job's events, oldest first")
    p.add_argument("job_id")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new events until the job ends")
    p.add_argument("--type", choices=["message", "metrics"])
    for action in ("cancel", "pause", "resume"):
        p = add(jobs, action, _transition(action), f"{action} a job")
        p.add_argument("job_id")
    p = add(jobs, "compare", cmd_jobs_compare,
            "jobs' validation metrics side by side: first evaluation -> final (step 0 is the model before training)")
    p.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    p = add(jobs, "checkpoints", cmd_jobs_checkpoints, "list a job's checkpoints")
    p.add_argument("job_id")
    p = add(jobs, "download", cmd_jobs_download, "download the final (or a checkpoint's) LoRA adapter")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", help="file or folder (default: current folder)")
    p.add_argument("--checkpoint", help="checkpoint id or step number")
    p.add_argument("--extract", action="store_true", help="unpack the .tar into the --output folder")

    # graders
    graders = top.add_parser("graders", help="check and try graders").add_subparsers(dest="cmd", metavar="ACTION",
                                                                                      required=True)
    p = add(graders, "validate", cmd_graders_validate, "validate a grader and print its normalised form")
    p.add_argument("grader", help="JSON text or a JSON/YAML file")
    p = add(graders, "run", cmd_graders_run, "score one model sample against one item")
    p.add_argument("--grader", required=True, help="JSON text or a JSON/YAML file")
    p.add_argument("--sample", required=True, help="the model's output text, or @file")
    p.add_argument("--item", help="the dataset row as JSON text or a JSON/YAML file")

    add(top, "models", cmd_models, "list base and fine-tuned models")

    # datasets (local, no server)
    ds = top.add_parser("datasets", help="build training files locally").add_subparsers(dest="cmd", metavar="ACTION",
                                                                                         required=True)
    p = add(ds, "coco", cmd_datasets_coco, "COCO instances → Visual-RFT detection set (.jsonl or .zip/.tar.gz)")
    p.add_argument("annotations", help="instances_*.json")
    p.add_argument("images", help="folder of the images")
    p.add_argument("-o", "--output", required=True, help="out.jsonl, out.zip or out.tar.gz")
    p.add_argument("-c", "--category", action="append", help="category name or id (repeat; default all)")
    p.add_argument("--shots", type=int, help="images per category")
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    if not hasattr(args, "progress"):
        args.progress = sys.stderr.isatty()
    args.wait_timeout = getattr(args, "wait_timeout", None)
    client: Client | None = None
    try:
        if args.func is not cmd_datasets_coco:
            kwargs: dict[str, Any] = {}
            for name in ("api_key", "base_url", "max_retries"):
                if hasattr(args, name):
                    kwargs[name] = getattr(args, name)
            request_timeout = vars(args).get("request_timeout")
            if request_timeout is not None:
                kwargs["timeout"] = request_timeout
            client = Client(**kwargs)
        code: int = args.func(client, args)
        return code
    except UsageError as exc:
        print(f"vrft: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except APIStatusError as exc:
        print(f"vrft: error: {exc}", file=sys.stderr)
        if args.json:
            emit_json({"error": {"status": exc.status_code, "code": exc.code, "param": exc.param,
                                 "message": exc.message}})
        return EXIT_API
    except APIConnectionError as exc:
        base = client.base_url if client is not None else "the server"
        print(f"vrft: error: cannot reach {base}: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except (VrftError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"vrft: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
