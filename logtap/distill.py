"""Bedrock Model Distillation from invocation logs: the dry-run plan, the request, the job.

``plan_distillation(records, ...)`` answers, before any money is spent, what a
``CreateModelCustomizationJob`` (``customizationType=DISTILLATION``) would get from the logs:
records matched per model and operation; per mode how many are usable and why the others are not
(the export converters' own normalization and skip reasons, so ``plan`` and ``export`` never
disagree); the 100-record minimum and 15,000 maximum; token lengths against the student's
context; tags Bedrock's filters cannot match; whether the teacher/student pair is supported
(``logtap/data/distill_pairs.json``); and the exact request.

``build_request`` / ``submit_job`` / ``job_status`` / ``wait_for_job`` talk to the ``bedrock``
control-plane client of a boto3 session; the request is checked against botocore's service model
before anything is sent.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from logtap.errors import DataError, FilterError, LogtapError
from logtap.models import model_family, normalize_model_id

Mode = Literal["prompt-only", "prompt-response"]
MODES: tuple[Mode, ...] = ("prompt-only", "prompt-response")
MIN_RECORDS = 100
MAX_RECORDS = 15_000
#: What the AWS samples use for ``maxResponseLengthForInference``; the API model gives no range.
DEFAULT_MAX_RESPONSE_LENGTH = 1000
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})

_CONTEXT = re.compile(r":([0-9]+)k$")
_FILTER_KEY = re.compile(r"[a-zA-Z0-9\s._:/=+$@-]{1,256}")
_FILTER_VALUE = re.compile(r"[a-zA-Z0-9\s._:/=+$@-]{0,256}")


# --------------------------------------------------------------------------- supported pairs

@dataclass(frozen=True)
class PairCheck:
    """Whether Bedrock distills ``teacher`` into ``student`` (per the pairs table)."""

    teacher: str
    student: str
    supported: bool
    regions: tuple[str, ...] = ()
    student_id: str | None = None  # the student ID as Bedrock names it, with its :NNNk suffix
    context_tokens: int | None = None
    messages: tuple[str, ...] = ()
    source: str = ""
    as_of: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher, "student": self.student, "supported": self.supported,
            "regions": list(self.regions), "studentId": self.student_id, "contextTokens": self.context_tokens,
            "messages": list(self.messages), "source": self.source, "asOf": self.as_of,
        }


@lru_cache(maxsize=1)
def load_pairs() -> dict[str, Any]:
    """The supported-pairs table (``logtap/data/distill_pairs.json``): source URL, ``as_of``, pairs."""
    text = resources.files("logtap").joinpath("data/distill_pairs.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def context_tokens(model_id: str) -> int | None:
    """The context length a ``:NNNk`` suffix names (``amazon.nova-lite-v1:0:300k`` -> 300000)."""
    m = _CONTEXT.search(model_id.strip())
    return int(m.group(1)) * 1000 if m else None


def check_pair(teacher: str, student: str, region: str | None = None) -> PairCheck:
    """Look ``teacher``/``student`` (any ID form) up in the pairs table; ``region`` is where the job
    would run. Messages say what is wrong and what to use instead."""
    table = load_pairs()
    t_base, s_base = normalize_model_id(teacher), normalize_model_id(student)
    messages: list[str] = []
    match = None
    teacher_rows = [p for p in table["pairs"] if normalize_model_id(p["teacher"]) == t_base]
    for row in teacher_rows:
        for sid in row["students"]:
            if normalize_model_id(sid) == s_base:
                match = (row, sid)
    common = {"source": table["source"], "as_of": table["as_of"]}
    if match is None:
        if teacher_rows:
            options = sorted({s for r in teacher_rows for s in r["students"]})
            messages.append(f"{t_base} is a teacher for {', '.join(options)}, not {s_base}")
        else:
            teachers = sorted({p["teacher"] for p in table["pairs"] if p["available"]})
            messages.append(f"{t_base} is not a distillation teacher; teachers: {', '.join(teachers)}")
        return PairCheck(teacher, student, False, messages=tuple(messages), **common)
    row, sid = match
    supported = bool(row["available"])
    if not supported:
        messages.append(f"distillation from {t_base} is not currently available in Bedrock")
    if region and region not in row["regions"]:
        supported = False
        messages.append(f"this pair runs in {', '.join(row['regions'])}, not {region}")
    if student.strip() != sid and normalize_model_id(student) == normalize_model_id(sid):
        if context_tokens(student) is None:
            messages.append(f"use the student ID with its context length: --student {sid}")
    if row.get("profile_only") and normalize_model_id(teacher) == teacher.strip():
        messages.append(f"{t_base} is available only through a (system) inference profile, e.g. us.{t_base}")
    return PairCheck(teacher, student, supported, tuple(row["regions"]), sid, context_tokens(sid),
                     tuple(messages), **common)


# --------------------------------------------------------------------------- the plan

@dataclass
class ModePlan:
    """One mode: records usable for it and why the others are not."""

    mode: Mode
    usable: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    input_tokens: list[int] = field(default_factory=list, repr=False)
    output_tokens: list[int] = field(default_factory=list, repr=False)
    over_context: int = 0

    def checks(self) -> list[str]:
        out = []
        if self.usable < MIN_RECORDS:
            out.append(f"only {self.usable} usable records: Bedrock recommends at least {MIN_RECORDS}")
        if self.usable > MAX_RECORDS:
            out.append(f"{self.usable} usable records: a distillation job takes at most {MAX_RECORDS:,}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "usePromptResponse": self.mode == "prompt-response",
            "usable": self.usable,
            "skipped": dict(sorted(self.skipped.items())),
            "checks": self.checks(),
            "tokens": {"input": _summary(self.input_tokens), "output": _summary(self.output_tokens),
                       "overStudentContext": self.over_context},
        }


def _summary(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))]

    return {"min": ordered[0], "p50": pct(0.5), "p95": pct(0.95), "max": ordered[-1], "count": len(ordered)}


@dataclass
class DistillPlan:
    teacher: str
    student: str
    pair: PairCheck
    matched: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    modes: dict[str, ModePlan] = field(default_factory=dict)
    #: tag key -> number of matched records whose key or value has a character Bedrock's filter
    #: pattern lacks (``#``, ``,`` and others): such tags can be logged but never filtered on.
    unfilterable_tags: Counter[str] = field(default_factory=Counter)
    filter: dict[str, Any] | None = None
    filter_problem: str | None = None
    notes: list[str] = field(default_factory=list)
    request: dict[str, Any] | None = None
    request_problems: list[str] = field(default_factory=list)
    max_response_length: int = DEFAULT_MAX_RESPONSE_LENGTH
    malformed: int = 0

    @property
    def ok(self) -> bool:
        """True when the job could be submitted as planned (pair supported, valid request)."""
        return self.pair.supported and self.request is not None and not self.request_problems

    def to_json(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "student": self.student,
            "pair": self.pair.to_json(),
            "matched": self.matched,
            "malformed": self.malformed,
            "byModel": dict(sorted(self.by_model.items())),
            "byOperation": dict(sorted(self.by_operation.items())),
            "modes": {m: p.to_json() for m, p in self.modes.items()},
            "maxResponseLengthForInference": self.max_response_length,
            "unfilterableTags": dict(sorted(self.unfilterable_tags.items())),
            "filter": self.filter,
            "filterProblem": self.filter_problem,
            "notes": self.notes,
            "request": self.request,
            "requestProblems": self.request_problems,
            "ok": self.ok,
        }


#: ``classify(record, mode) -> (skip reason or None, prompt key or None)``; the key identifies the
#: prompt for duplicate detection.
Classifier = Callable[[Mapping[str, Any], Mode], tuple[str | None, bytes | None]]


def export_classifier(*, teacher: str, student: str) -> Classifier:
    """The export pipeline's own decision for one record: ``normalize`` -> ``shape`` (with the
    student family's defaults) -> ``bedrock-conversation-2024`` record -> ``check_record``."""
    from logtap.converters.export import document_key, to_document
    from logtap.converters.model import Unsupported
    from logtap.converters.normalize import normalize
    from logtap.converters.shaping import Shaping

    shapings = {m: Shaping.for_student(student, mode=m, teacher=teacher) for m in MODES}
    # The plan asks for each mode in turn with the same record: normalize it once.
    last: list[Any] = [None, None]

    def normalized(record: Mapping[str, Any]) -> Any:
        if last[0] is not record:
            try:
                last[1] = normalize(dict(record))
            except Unsupported as exc:
                last[1] = exc
            last[0] = record
        if isinstance(last[1], Unsupported):
            raise last[1]
        return last[1]

    def classify(record: Mapping[str, Any], mode: Mode) -> tuple[str | None, bytes | None]:
        shaping = shapings[mode]
        try:
            doc = to_document(normalized(record), shaping, rules=shaping.rules)
        except Unsupported as exc:
            return exc.reason, None
        return None, document_key(doc, mode)

    return classify


#: What the plan needs of one matched record (small and picklable, so worker processes can send it):
#: (model id normalized, operation, tag keys Bedrock's filters cannot match, input tokens, output
#: tokens, per mode of the plan ``(skip reason or None, prompt key or None)``).
Facts = tuple[str, str, tuple[str, ...], int | None, int | None, tuple[tuple[str | None, bytes | None], ...]]


def record_facts(rec: Mapping[str, Any], classify: Classifier, modes: Sequence[Mode]) -> Facts:
    """The ``Facts`` of one record under ``classify`` for each of ``modes``."""
    meta = rec.get("requestMetadata")
    unfilterable: tuple[str, ...] = ()
    if isinstance(meta, Mapping):
        unfilterable = tuple(str(k) for k, v in meta.items()
                             if not _FILTER_KEY.fullmatch(str(k)) or not _FILTER_VALUE.fullmatch(str(v)))
    return (normalize_model_id(str(rec.get("modelId") or "(none)")), str(rec.get("operation") or "(none)"),
            unfilterable, _int((rec.get("input") or {}).get("inputTokenCount")),
            _int((rec.get("output") or {}).get("outputTokenCount")), tuple(classify(rec, m) for m in modes))


def plan_distillation(
    records: Iterable[Mapping[str, Any]],
    *,
    teacher: str,
    student: str,
    filter: Any = None,
    modes: Sequence[Mode] = MODES,
    region: str | None = None,
    logs_uri: str | None = None,
    job: JobSpec | None = None,
    request_mode: Mode | None = None,
    local_only: Sequence[str] = (),
    classify: Classifier | None = None,
    malformed: int = 0,
    facts: Iterable[Facts] | None = None,
) -> DistillPlan:
    """The dry-run report for distilling ``teacher`` into ``student`` from ``records``.

    ``records`` are full invocation-log records that already match ``filter`` (as
    ``logtap.open_logs(...).records()`` yields them). ``logs_uri`` is the ``s3://`` prefix the job
    would read; ``local_only`` names the options that narrowed ``records`` but that Bedrock cannot
    apply (``--since``, ``--model``...). ``request_mode`` picks the mode of the request shown
    (default: prompt-response if any record is usable for it, else prompt-only). ``facts``, when
    given, stands for ``records``: their ``record_facts`` under ``modes``, in the same order
    (``plan_logs`` has worker processes compute them).
    """
    pair = check_pair(teacher, student, region)
    plan = DistillPlan(teacher=teacher, student=student, pair=pair, malformed=malformed)
    plan.max_response_length = job.max_response_length if job else DEFAULT_MAX_RESPONSE_LENGTH
    plan.modes = {m: ModePlan(m) for m in modes}
    if facts is None:
        judge = classify or export_classifier(teacher=teacher, student=student)
        facts = (record_facts(rec, judge, modes) for rec in records)
    limit = pair.context_tokens or context_tokens(student)
    seen: dict[str, set[bytes]] = {m: set() for m in modes}
    mode_plans = list(plan.modes.values())
    for model, operation, unfilterable, tokens_in, tokens_out, outcomes in facts:
        plan.matched += 1
        plan.by_model[model] += 1
        plan.by_operation[operation] += 1
        for tag in unfilterable:
            plan.unfilterable_tags[tag] += 1
        for mp, (reason, key) in zip(mode_plans, outcomes, strict=True):
            mode = mp.mode
            if reason is None and key is not None:
                if key in seen[mode]:
                    reason = "duplicate"
                else:
                    seen[mode].add(key)
            if reason is not None:
                mp.skipped[reason] += 1
                continue
            mp.usable += 1
            if tokens_in is not None:
                mp.input_tokens.append(tokens_in)
            if tokens_out is not None:
                mp.output_tokens.append(tokens_out)
            if limit is not None and tokens_in is not None:
                answer = tokens_out if mode == "prompt-response" else plan.max_response_length
                if tokens_in + (answer or 0) > limit:
                    mp.over_context += 1
    _filter_section(plan, filter)
    _notes(plan, logs_uri, local_only)
    if request_mode is None:
        pr = plan.modes.get("prompt-response")
        request_mode = "prompt-response" if pr is not None and pr.usable else "prompt-only"
    if logs_uri is None:
        plan.request_problems.append(
            "a job reads invocation logs from S3: give an s3:// SOURCE, or export to S3 and submit "
            "with --training-data")
    elif plan.filter_problem is None:
        spec = job or JobSpec()
        plan.request = build_request(
            teacher=teacher, student=pair.student_id or student, job=spec, logs_uri=logs_uri,
            filter=plan.filter, mode=request_mode)
        plan.request_problems.extend(spec.missing())
        if not spec.missing():
            plan.request_problems.extend(validate_request(plan.request))
    return plan


#: Bytes of facts a worker holds before writing a sorted run.
FACTS_RUN_BYTES = 16 << 20


def plan_logs(logs: Any, *, teacher: str, student: str, modes: Sequence[Mode] = MODES,
              **options: Any) -> DistillPlan:
    """``plan_distillation`` over a ``LogSet``'s records (``options`` as there, ``filter`` taken from
    ``logs``). Large local inputs with a selective filter are read and classified by worker
    processes (as ``logtap export`` does), which send back only each record's ``Facts`` in sorted
    runs; the plan is then the same as from ``logs.records()``."""
    parts = logs.parallel_parts()
    if parts is None:
        # the plan needs no line numbers: skip the extra counting pass over every file
        return plan_distillation(logs.records(lines=False), teacher=teacher, student=student, modes=modes,
                                 filter=logs.filter, **options)
    from logtap.spill import merge_runs

    results = logs.in_workers(parts, "logtap.distill:_plan_part", teacher, student, tuple(modes))
    merged = merge_runs([path for paths, _ in results for path in paths])
    try:
        return plan_distillation((), teacher=teacher, student=student, modes=modes, filter=logs.filter,
                                 facts=(facts for _, facts in merged), **options)
    finally:
        merged.close()


def _plan_part(part: Any, teacher: str, student: str, modes: tuple[Mode, ...], run_dir: str
               ) -> tuple[list[str], Any]:
    """In a worker process: the ``Facts`` of one share's records, as sorted runs in ``run_dir``."""
    from logtap.spill import sorted_runs, young_gc_only

    classify = export_classifier(teacher=teacher, student=student)
    with part.open() as logs, young_gc_only():
        items = ((key, record_facts(rec, classify, modes), 160) for key, rec in logs.records_unordered())
        return sorted_runs(items, run_dir, FACTS_RUN_BYTES), logs.report


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _filter_section(plan: DistillPlan, filter_: Any) -> None:
    if filter_ is None:
        return
    from logtap.filters import Filter, to_bedrock

    try:
        tree = filter_ if isinstance(filter_, Filter) else Filter.from_json(dict(filter_))
        plan.filter = to_bedrock(tree)
    except FilterError as exc:
        plan.filter_problem = str(exc)


def _notes(plan: DistillPlan, logs_uri: str | None, local_only: Sequence[str]) -> None:
    if local_only:
        plan.notes.append(
            f"{', '.join(local_only)} narrowed this report, but a job reading the logs applies only "
            "requestMetadataFilters: it will see every matching record under the S3 prefix. To train on "
            "exactly these records, `logtap export` them to S3 and submit with --training-data.")
    pr = plan.modes.get("prompt-response")
    if pr is not None and pr.skipped.get("teacher-mismatch"):
        plan.notes.append(
            "prompt-response uses only responses generated by the teacher model; whether Bedrock counts an "
            "inference-profile ID in modelId as the teacher is not documented (counted here as a match).")
    if model_family(plan.student) in ("meta", "anthropic"):
        plan.notes.append(f"{model_family(plan.student)} students take single-turn prompts only.")
    if plan.matched > MAX_RECORDS:
        plan.notes.append(f"{plan.matched:,} records match: above {MAX_RECORDS:,}, narrow the filter or "
                          "export a sample (--max-records).")


# --------------------------------------------------------------------------- the request

@dataclass(frozen=True)
class JobSpec:
    """What a job needs besides the data: names, role, output, teacher response length."""

    job_name: str | None = None
    model_name: str | None = None
    role_arn: str | None = None
    output_uri: str | None = None
    max_response_length: int = DEFAULT_MAX_RESPONSE_LENGTH
    kms_key_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def missing(self) -> list[str]:
        need = {"--job-name": self.job_name, "--model-name": self.model_name, "--role-arn": self.role_arn,
                "--output": self.output_uri}
        return [f"{opt} is required to submit" for opt, value in need.items() if not value]


def build_request(
    *,
    teacher: str,
    student: str,
    job: JobSpec,
    logs_uri: str | None = None,
    filter: Mapping[str, Any] | None = None,
    mode: Mode = "prompt-only",
    training_data_uri: str | None = None,
) -> dict[str, Any]:
    """The ``CreateModelCustomizationJob`` parameters (boto3 names) for a distillation job that
    reads either the invocation logs under ``logs_uri`` (with ``filter`` and ``mode``) or a
    ``bedrock-conversation-2024`` file at ``training_data_uri``. Missing names stay out."""
    if (logs_uri is None) == (training_data_uri is None):
        raise LogtapError("give exactly one of the logs' s3:// URI or --training-data s3://...")
    if mode not in MODES:
        raise LogtapError(f"--mode must be prompt-only or prompt-response, not {mode!r}")
    data: dict[str, Any]
    if logs_uri is not None:
        if not logs_uri.startswith("s3://"):
            raise LogtapError(f"a job reads logs from S3; {logs_uri!r} is not an s3:// URI")
        logs: dict[str, Any] = {
            "usePromptResponse": mode == "prompt-response",
            "invocationLogSource": {"s3Uri": logs_uri},
        }
        if filter is not None:
            logs["requestMetadataFilters"] = dict(filter)
        data = {"invocationLogsConfig": logs}
    else:
        assert training_data_uri is not None
        if not training_data_uri.startswith("s3://"):
            raise LogtapError(f"--training-data must be an s3:// URI written by `logtap export`, got "
                              f"{training_data_uri!r}")
        data = {"s3Uri": training_data_uri}
    request: dict[str, Any] = {}
    for key, value in (("jobName", job.job_name), ("customModelName", job.model_name),
                       ("roleArn", job.role_arn)):
        if value:
            request[key] = value
    request["baseModelIdentifier"] = student
    request["customizationType"] = "DISTILLATION"
    request["trainingDataConfig"] = data
    if job.output_uri:
        request["outputDataConfig"] = {"s3Uri": job.output_uri}
    request["customizationConfig"] = {"distillationConfig": {"teacherModelConfig": {
        "teacherModelIdentifier": teacher,
        "maxResponseLengthForInference": int(job.max_response_length),
    }}}
    if job.kms_key_id:
        request["customModelKmsKeyId"] = job.kms_key_id
    if job.tags:
        request["jobTags"] = [{"key": k, "value": v} for k, v in job.tags.items()]
    return request


def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("bedrock")


def validate_request(request: Mapping[str, Any], service_model: Any = None) -> list[str]:
    """Problems in ``request`` against the installed ``bedrock`` service model: botocore's own
    validator (required members, types, minimum lengths, unknown members), plus the ``pattern``
    and ``max`` of every string in the request (nested ones and map keys included), which botocore
    leaves to the service."""
    from botocore.validate import ParamValidator

    model = service_model or _service_model()
    shape = model.operation_model("CreateModelCustomizationJob").input_shape
    report = ParamValidator().validate(dict(request), shape)
    problems: list[str] = []
    if report.has_errors():
        problems = [line.strip("- ").strip() for line in report.generate_report().splitlines() if line.strip()]
    _check_strings(shape, request, "", problems)
    return problems


def _check_strings(shape: Any, value: Any, path: str, problems: list[str]) -> None:
    """Append a problem for each string under ``value`` that breaks its shape's ``max``/``pattern``."""
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        pattern, longest = shape.metadata.get("pattern"), shape.metadata.get("max")
        if longest is not None and len(value) > longest:
            problems.append(f"{path} is {len(value)} characters; at most {longest} allowed")
        elif pattern and not re.fullmatch(pattern, value):
            problems.append(f"{path} {value!r} does not match the pattern {pattern}")
    elif kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _check_strings(member, value[name], f"{path}.{name}" if path else name, problems)
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            _check_strings(shape.key, key, f"{path} key", problems)
            _check_strings(shape.value, item, f"{path}[{key!r}]", problems)


def _client(client: Any, session: Any) -> Any:
    if client is not None:
        return client
    if session is None:
        import boto3

        session = boto3.Session()
    return session.client("bedrock")


def submit_job(request: Mapping[str, Any], *, client: Any = None, session: Any = None) -> str:
    """Create the job; returns its ARN. ``DataError`` if the request is incomplete or invalid."""
    problems = validate_request(request)
    if problems:
        raise DataError("the CreateModelCustomizationJob request is invalid: " + "; ".join(problems))
    response = _client(client, session).create_model_customization_job(**request)
    return str(response["jobArn"])


#: Fields of GetModelCustomizationJob worth showing, in order.
STATUS_FIELDS = ("jobArn", "jobName", "status", "statusDetails", "failureMessage", "customizationType",
                 "baseModelArn", "outputModelArn", "outputModelName", "creationTime", "lastModifiedTime",
                 "endTime")


def job_status(job: str, *, client: Any = None, session: Any = None) -> dict[str, Any]:
    """The job's status (``jobIdentifier`` is its name or ARN), the fields of ``STATUS_FIELDS``."""
    response = _client(client, session).get_model_customization_job(jobIdentifier=job)
    return {k: response[k] for k in STATUS_FIELDS if k in response}


def wait_for_job(
    job: str,
    *,
    client: Any = None,
    session: Any = None,
    poll_seconds: float = 60.0,
    timeout_seconds: float | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the job is Completed, Failed or Stopped (``on_update`` sees each change of
    status); ``DataError`` after ``timeout_seconds``."""
    bedrock = _client(client, session)
    start = clock()
    last: Any = None
    while True:
        status = job_status(job, client=bedrock)
        state = (status.get("status"), json.dumps(status.get("statusDetails"), sort_keys=True, default=str))
        if state != last and on_update:
            on_update(status)
        last = state
        if status.get("status") in TERMINAL_STATUSES:
            return status
        if timeout_seconds is not None and clock() - start >= timeout_seconds:
            raise DataError(f"job {job} still {status.get('status')} after {timeout_seconds:.0f} s")
        sleep(poll_seconds)
