"""Types of Peyk's API records, generated from its OpenAPI document by
`tools/generate_models.py` — do not edit by hand (the test suite fails when
this module and the served document differ).

Records are plain dicts at run time; these `TypedDict`s type them for your
editor and type checker: `job: peyk.models.JobView = client.jobs.get(id)`.
"""

# ruff: noqa: E501

from __future__ import annotations

from typing import Any, Literal, TypeAlias, TypedDict, Union


class _AccountViewRequired(TypedDict):
    callback_path: str
    created_at: str
    gateway: str
    sandbox: bool
    updated_at: str


class AccountView(_AccountViewRequired, total=False):
    return_url: Union[str, None]


class _ArrayMessageRequired(TypedDict):
    message: str
    receptor: Mobile


class ArrayMessage(_ArrayMessageRequired, total=False):
    sender: Union[str, None]


class AttemptList(TypedDict):
    data: list[AttemptView]


class _AttemptViewRequired(TypedDict):
    attempt: int
    started_at: str
    worker: str


class AttemptView(_AttemptViewRequired, total=False):
    """One attempt at running a job."""
    error: Union[None, JobErrorView]
    finished_at: Union[str, None]
    outcome: Union[str, None]


class _AuditEntryViewRequired(TypedDict):
    action: str
    actor: str
    at: str
    details: Any
    id: str


class AuditEntryView(_AuditEntryViewRequired, total=False):
    actor_key_id: Union[str, None]
    target: Union[str, None]
    tenant_id: Union[str, None]


class _AuditListRequired(TypedDict):
    data: list[AuditEntryView]


class AuditList(_AuditListRequired, total=False):
    next: Union[str, None]


class BatchAnswer(TypedDict):
    accepted: int
    data: list[BatchItem]
    rejected: int
    replayed: int


class _BatchItemRequired(TypedDict):
    index: int
    status: int


class BatchItem(_BatchItemRequired, total=False):
    """One item's answer."""
    error: Union[None, ErrorDetail]
    id: Union[str, None]
    job_status: Union[str, None]


class BuiltinTemplate(TypedDict):
    """A built-in template and its languages."""
    languages: list[str]
    name: str


class _CreateEndpointRequired(TypedDict):
    url: str


class CreateEndpoint(_CreateEndpointRequired, total=False):
    """`POST /v1/webhook-endpoints` body."""
    description: Union[str, None]
    enabled: Union[bool, None]
    event_types: Union[list[str], None]
    secret: Union[str, None]


class _CreateKeyRequired(TypedDict):
    tenant: str


class CreateKey(_CreateKeyRequired, total=False):
    expires_at: Union[str, None]
    name: str
    scopes: list[str]


class _CreatedKeyRequired(TypedDict):
    created_at: str
    id: str
    name: str
    prefix: str
    scopes: list[str]
    tenant_id: str
    key: str


class CreatedKey(_CreatedKeyRequired, total=False):
    expires_at: Union[str, None]
    last_used_at: Union[str, None]
    revoked_at: Union[str, None]


class _EmailAttachmentRequired(TypedDict):
    file_id: str


class EmailAttachment(_EmailAttachmentRequired, total=False):
    filename: Union[str, None]


EmailJob = TypedDict("EmailJob", {"attachments": 'list[EmailAttachment]', "bcc": 'list[str]', "cc": 'list[str]', "from": 'Union[str, None]', "html": 'Union[str, None]', "language": 'Union[str, None]', "reply_to": 'Union[str, None]', "subject": 'Union[str, None]', "template": 'Union[str, None]', "text": 'Union[str, None]', "to": 'list[str]', "variables": 'dict[str, Any]'}, total=False)


class ErrorBody(TypedDict):
    """Every error answer."""
    error: ErrorDetail


class ErrorDetail(TypedDict):
    code: str
    details: Any
    message: str


class EventTypeList(TypedDict):
    data: list[EventTypeView]


class EventTypeView(TypedDict):
    description: str
    type: str


class _FileViewRequired(TypedDict):
    created_at: str
    filename: str
    id: str
    sha256: str
    size_bytes: int


class FileView(_FileViewRequired, total=False):
    """An uploaded file's record."""
    content_type: Union[str, None]
    duration_seconds: Union[float, None]
    erased_at: Union[str, None]


class _FireListRequired(TypedDict):
    data: list[FireView]


class FireList(_FireListRequired, total=False):
    next_cursor: Union[str, None]


class _FireTimeRequired(TypedDict):
    at: str
    local: str


class FireTime(_FireTimeRequired, total=False):
    """A fire time, in UTC and on the schedule's wall clock."""
    persian_date: Union[str, None]


class _FireViewRequired(TypedDict):
    fire_at: str
    fired_at: str
    local: str
    manual: bool
    outcome: str


class FireView(_FireViewRequired, total=False):
    """One fire time acted on."""
    job_id: Union[str, None]
    job_status: Union[str, None]
    missed: Union[int, None]
    pipeline_id: Union[str, None]


class JobErasureView(TypedDict):
    """What `DELETE /v1/jobs/{id}` erased."""
    attempts_erased: int
    files_erased: list[str]
    files_kept: list[str]
    job: JobView
    messages_erased: int


class JobErrorView(TypedDict):
    code: str
    message: str


class _JobListRequired(TypedDict):
    data: list[JobView]


class JobList(_JobListRequired, total=False):
    next_cursor: Union[str, None]


class _JobTemplateRequired(TypedDict):
    payload: dict[str, Any]
    type: str


class JobTemplate(_JobTemplateRequired, total=False):
    """The job each fire submits."""
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]


class _JobViewRequired(TypedDict):
    attempts: int
    created_at: str
    id: str
    max_attempts: int
    metadata: BTreeMap
    payload: Any
    priority: int
    run_at: str
    status: str
    type: str
    updated_at: str


class JobView(_JobViewRequired, total=False):
    """A job record."""
    callback_url: Union[str, None]
    erased_at: Union[str, None]
    error: Union[None, JobErrorView]
    finished_at: Union[str, None]
    idempotency_key: Union[str, None]
    pipeline_id: Union[str, None]
    pipeline_step: Union[int, None]
    progress: Union[int, None]
    result: Any
    schedule_id: Union[str, None]
    started_at: Union[str, None]


class KeyList(TypedDict):
    data: list[KeyView]


class _KeyViewRequired(TypedDict):
    created_at: str
    id: str
    name: str
    prefix: str
    scopes: list[str]
    tenant_id: str


class KeyView(_KeyViewRequired, total=False):
    """A key as operators see it: never the key itself."""
    expires_at: Union[str, None]
    last_used_at: Union[str, None]
    revoked_at: Union[str, None]


class _MedicalAnalysisJobRequired(TypedDict):
    analysis_type: Union[None, AnalysisType]


class MedicalAnalysisJob(_MedicalAnalysisJobRequired, total=False):
    """Payload of a `medical_analysis` job."""
    language: Union[None, Language]
    max_tokens: Union[int, None]
    patient_context: Union[None, PatientContext]
    segments: Union[list[Utterance], None]
    speaker_roles: dict[str, Literal["clinician", "patient", "companion", "interpreter", "other"]]
    temperature: Union[float, None]
    text: str


class MedicalAnalysisOutput_generate(TypedDict):
    text: str


class MedicalAnalysisOutput_medications(TypedDict):
    interactions_to_check: list[MedicalAnalysisOutput_medications_interactions_to_checkItem]
    medications: list[MedicalAnalysisOutput_medications_medicationsItem]
    notes: Union[str, None]


class MedicalAnalysisOutput_medications_interactions_to_checkItem(TypedDict):
    concern: str
    drugs: list[str]


class MedicalAnalysisOutput_medications_medicationsItem(TypedDict):
    dose: Union[str, None]
    frequency: Union[str, None]
    indication: Union[str, None]
    name: str
    route: Union[str, None]


class MedicalAnalysisOutput_soap_note(TypedDict):
    assessment: str
    objective: str
    plan: str
    subjective: str


class MedicalAnalysisOutput_summary(TypedDict):
    key_points: list[str]
    summary: str


class MedicalAnalysisOutput_symptoms(TypedDict):
    red_flags: list[MedicalAnalysisOutput_symptoms_red_flagsItem]
    summary: str
    symptoms: list[MedicalAnalysisOutput_symptoms_symptomsItem]


class MedicalAnalysisOutput_symptoms_red_flagsItem(TypedDict):
    finding: str
    reason: str


class MedicalAnalysisOutput_symptoms_symptomsItem(TypedDict):
    duration: Union[str, None]
    name: str
    notes: Union[str, None]
    severity: Literal["mild", "moderate", "severe", "unknown"]


class MedicalAnalysisOutput_triage(TypedDict):
    reasons: list[str]
    recommended_action: str
    red_flags: list[str]
    urgency: Literal["emergency", "urgent", "semi_urgent", "routine", "self_care"]


class _MedicalAnalysisResultRequired(TypedDict):
    analysis_type: Literal["symptoms", "soap_note", "triage", "medications", "summary", "generate"]
    disclaimer: MedicalAnalysisResult_disclaimer
    language: Literal["fa", "en"]
    model: str
    model_calls: int
    output: Union[MedicalAnalysisOutput_symptoms, MedicalAnalysisOutput_soap_note, MedicalAnalysisOutput_triage, MedicalAnalysisOutput_medications, MedicalAnalysisOutput_summary, MedicalAnalysisOutput_generate]
    redaction: MedicalAnalysisResult_redaction
    response_format: Literal["json_schema", "json_object", "text"]
    usage: MedicalAnalysisResult_usage


class MedicalAnalysisResult(_MedicalAnalysisResultRequired, total=False):
    """Result of a `medical_analysis` job. `output` follows the schema of its `analysis_type`."""
    finish_reason: Union[str, None]
    timing_ms: MedicalAnalysisResult_timing_ms


class MedicalAnalysisResult_disclaimer(TypedDict, total=False):
    """Always present: not a diagnosis"""
    en: str
    fa: str


class MedicalAnalysisResult_redaction(TypedDict, total=False):
    applied: bool
    removed: MedicalAnalysisResult_redaction_removed


class MedicalAnalysisResult_timing_ms(TypedDict, total=False):
    provider: float
    worker: float


class MedicalAnalysisResult_usage(TypedDict, total=False):
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int


class MedicalAnalysisResult_redaction_removed(TypedDict, total=False):
    email: int
    name: int
    national_id: int
    phone: int


class ModelList(TypedDict):
    """The model list, in OpenAI's shape."""
    data: list[ModelView]
    object: str


class ModelView(TypedDict):
    """One model, in OpenAI's shape."""
    created: int
    id: str
    object: str
    owned_by: str


class OwnUsage(TypedDict):
    periods: Periods
    quotas: QuotaView
    used: Used


class PatientContext(TypedDict, total=False):
    """What helps the model read the text. `name` is never sent: it is only"""
    age: Union[int, None]
    history: Union[str, None]
    medications: Union[list[str], None]
    name: Union[str, None]
    sex: Union[None, Sex]


class _PaymentVerificationJobRequired(TypedDict):
    amount: int
    currency: str
    gateway: Gateway
    order_id: str
    reference: str


class PaymentVerificationJob(_PaymentVerificationJobRequired, total=False):
    """Payload of a `payment_verification` job."""
    trans_id: Union[str, None]


class Periods(TypedDict):
    day: str
    day_ends_at: str
    month: str
    month_ends_at: str


class _PipelineTemplateRequired(TypedDict):
    steps: list[StepSpec]


class PipelineTemplate(_PipelineTemplateRequired, total=False):
    """The pipeline each fire submits."""
    metadata: Union[None, BTreeMap]


class _PipelineViewRequired(TypedDict):
    created_at: str
    current_step: int
    id: str
    metadata: BTreeMap
    status: str
    steps: list[StepView]


class PipelineView(_PipelineViewRequired, total=False):
    error: Union[None, JobErrorView]
    finished_at: Union[str, None]


class _PutAccountRequired(TypedDict):
    credentials: dict[str, Any]


class PutAccount(_PutAccountRequired, total=False):
    """A gateway account's settings."""
    return_url: Union[str, None]
    sandbox: bool


class PutSource(TypedDict, total=False):
    secret: Union[str, None]


class _PutTaskTargetRequired(TypedDict):
    url: str


class PutTaskTarget(_PutTaskTargetRequired, total=False):
    """`PUT /v1/task-targets/{name}` body. Fields left out take their default"""
    description: Union[str, None]
    max_attempts: Union[int, None]
    max_backoff_seconds: Union[int, None]
    min_backoff_seconds: Union[int, None]
    secret: Union[str, None]
    timeout_seconds: Union[int, None]


class _PutTemplateRequired(TypedDict):
    language: str
    subject: str


class PutTemplate(_PutTemplateRequired, total=False):
    """A template's sources in one language (minijinja syntax; HTML is"""
    html: Union[str, None]
    text: Union[str, None]


class QueueList(TypedDict):
    data: list[QueueView]


class QueueView(TypedDict):
    in_flight: int
    paused: bool
    queue: str
    scheduled: int
    tenants: list[TenantQueueView]
    waiting: int


class QuotaView(TypedDict, total=False):
    """The quotas that apply (own or the server's default; `null`: none)."""
    audio_minutes_per_month: Union[int, None]
    emails_per_day: Union[int, None]
    jobs_per_day: Union[int, None]
    llm_tokens_per_month: Union[int, None]
    sms_per_day: Union[int, None]


class ReplayMessage(TypedDict, total=False):
    """`POST /v1/webhook-messages/{id}/replay` body (may be empty)."""
    endpoint_id: Union[str, None]


class ReplayView(TypedDict):
    job_ids: list[str]
    message_id: str


class RetentionUpdate(TypedDict, total=False):
    """Days each kind of content is kept after it is done with (fractions"""
    content_days: Union[float, None]
    sensitive_days: Union[float, None]
    trail_days: Union[float, None]
    upload_days: Union[float, None]


class RetentionView(TypedDict, total=False):
    """Days a tenant's content is kept, where it has its own (`null`: the"""
    content_days: Union[float, None]
    sensitive_days: Union[float, None]
    trail_days: Union[float, None]
    upload_days: Union[float, None]


class RotateSecret(TypedDict, total=False):
    """`POST /v1/webhook-endpoints/{id}/rotate-secret` body (may be empty)."""
    grace_seconds: Union[int, None]
    secret: Union[str, None]


class _ScheduleListRequired(TypedDict):
    data: list[ScheduleView]


class ScheduleList(_ScheduleListRequired, total=False):
    next_cursor: Union[str, None]


class _ScheduleSpecRequired(TypedDict):
    name: str


class ScheduleSpec(_ScheduleSpecRequired, total=False):
    """A schedule as created (`POST`) and as a `PATCH` is merged into."""
    calendar: str
    cron: Union[str, None]
    end_at: Union[str, None]
    every_seconds: Union[int, None]
    job: Union[None, JobTemplate]
    misfire: str
    misfire_cap: int
    misfire_grace_seconds: int
    overlap: str
    paused: bool
    pipeline: Union[None, PipelineTemplate]
    start_at: Union[str, None]
    timezone: str


class _ScheduleViewRequired(TypedDict):
    name: str
    created_at: str
    id: str
    next_runs: list[FireTime]
    updated_at: str


class ScheduleView(_ScheduleViewRequired, total=False):
    calendar: str
    cron: Union[str, None]
    end_at: Union[str, None]
    every_seconds: Union[int, None]
    job: Union[None, JobTemplate]
    misfire: str
    misfire_cap: int
    misfire_grace_seconds: int
    overlap: str
    paused: bool
    pipeline: Union[None, PipelineTemplate]
    start_at: Union[str, None]
    timezone: str
    history: Union[list[FireView], None]
    last_fire_at: Union[str, None]
    last_job_id: Union[str, None]


class _SmsJob0Required(TypedDict):
    message: str
    mode: Literal["send"]
    receptors: list[Mobile]


class SmsJob0(_SmsJob0Required, total=False):
    """One text to one or more numbers."""
    sender: Union[str, None]


class SmsJob1(TypedDict):
    """A different text per number."""
    messages: list[ArrayMessage]
    mode: Literal["sendarray"]


class _SmsJobCallRequired(TypedDict):
    receptor: Mobile
    template: str
    token: str
    mode: Literal["call"]


class SmsJobCall(_SmsJobCallRequired, total=False):
    token10: Union[str, None]
    token2: Union[str, None]
    token20: Union[str, None]
    token3: Union[str, None]


class _SmsJobLookupRequired(TypedDict):
    receptor: Mobile
    template: str
    token: str
    mode: Literal["lookup"]


class SmsJobLookup(_SmsJobLookupRequired, total=False):
    token10: Union[str, None]
    token2: Union[str, None]
    token20: Union[str, None]
    token3: Union[str, None]


class _StepSpecRequired(TypedDict):
    payload: dict[str, Any]
    type: Literal["webhook", "transcription", "sms", "email", "medical_analysis", "payment_verification", "task"]


class StepSpec(_StepSpecRequired, total=False):
    """One step as submitted."""
    max_attempts: Union[int, None]


class _StepViewRequired(TypedDict):
    index: int
    status: str
    type: str


class StepView(_StepViewRequired, total=False):
    error: Union[None, JobErrorView]
    job_id: Union[str, None]
    result: Any


class SubmitBatch(TypedDict):
    jobs: list[SubmitJob]


class _SubmitEmailJobRequired(TypedDict):
    payload: EmailJob
    type: Literal["email"]


class SubmitEmailJob(_SubmitEmailJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class SubmitJobOptions(TypedDict, total=False):
    """`POST /v1/jobs` body."""
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _SubmitMedicalAnalysisJobRequired(TypedDict):
    payload: MedicalAnalysisJob
    type: Literal["medical_analysis"]


class SubmitMedicalAnalysisJob(_SubmitMedicalAnalysisJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _SubmitPaymentVerificationJobRequired(TypedDict):
    payload: PaymentVerificationJob
    type: Literal["payment_verification"]


class SubmitPaymentVerificationJob(_SubmitPaymentVerificationJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _SubmitPipelineRequired(TypedDict):
    steps: list[StepSpec]


class SubmitPipeline(_SubmitPipelineRequired, total=False):
    """`POST /v1/pipelines` body."""
    metadata: Union[None, BTreeMap]


class _SubmitSmsJobRequired(TypedDict):
    payload: SmsJob
    type: Literal["sms"]


class SubmitSmsJob(_SubmitSmsJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _SubmitTaskJobRequired(TypedDict):
    payload: TaskJob
    type: Literal["task"]


class SubmitTaskJob(_SubmitTaskJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _SubmitTranscriptionJobRequired(TypedDict):
    payload: TranscriptionJob
    type: Literal["transcription"]


class SubmitTranscriptionJob(_SubmitTranscriptionJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _SubmitWebhookJobRequired(TypedDict):
    payload: WebhookJob
    type: Literal["webhook"]


class SubmitWebhookJob(_SubmitWebhookJobRequired, total=False):
    callback_secret: Union[str, None]
    callback_url: Union[str, None]
    delay_seconds: Union[float, None]
    idempotency_key: Union[str, None]
    max_attempts: Union[int, None]
    metadata: Union[None, BTreeMap]
    priority: Union[int, None]
    run_at: Union[str, None]


class _TaskJobRequired(TypedDict):
    name: str


class TaskJob(_TaskJobRequired, total=False):
    """Payload of a `task` job."""
    args: Any


class TaskTargetList(TypedDict):
    data: list[TaskTargetView]


class _TaskTargetViewRequired(TypedDict):
    created_at: str
    max_attempts: int
    max_backoff_seconds: int
    min_backoff_seconds: int
    name: str
    timeout_seconds: int
    updated_at: str
    url: str


class TaskTargetView(_TaskTargetViewRequired, total=False):
    """A task target."""
    description: Union[str, None]
    secret: Union[str, None]


class TemplateList(TypedDict):
    builtin: list[BuiltinTemplate]
    data: list[TemplateView]


class _TemplateMessageRequired(TypedDict):
    receptor: Mobile
    template: str
    token: str


class TemplateMessage(_TemplateMessageRequired, total=False):
    token10: Union[str, None]
    token2: Union[str, None]
    token20: Union[str, None]
    token3: Union[str, None]


class _TemplateViewRequired(TypedDict):
    created_at: str
    language: str
    name: str
    subject: str
    updated_at: str


class TemplateView(_TemplateViewRequired, total=False):
    html: Union[str, None]
    text: Union[str, None]


class TenantList(TypedDict):
    data: list[TenantView]


class _TenantQueueViewRequired(TypedDict):
    paused: bool
    tenant_id: str
    waiting: int


class TenantQueueView(_TenantQueueViewRequired, total=False):
    tenant: Union[str, None]


class _TenantUsageRequired(TypedDict):
    audio_seconds: int
    emails: int
    jobs: int
    llm_tokens: int
    sms: int
    tenant_id: str


class TenantUsage(_TenantUsageRequired, total=False):
    tenant: Union[str, None]


class _TenantViewRequired(TypedDict):
    id: str
    max_running: dict[str, int]
    name: str
    retention: RetentionView
    sender_domains: list[str]
    weight: int


class TenantView(_TenantViewRequired, total=False):
    audio_minutes_per_month: Union[int, None]
    burst: Union[int, None]
    emails_per_day: Union[int, None]
    jobs_per_day: Union[int, None]
    llm_tokens_per_month: Union[int, None]
    requests_per_second: Union[int, None]
    sms_per_day: Union[int, None]


TranscriptionForm = TypedDict("TranscriptionForm", {"chunking_strategy": 'str', "digits": 'str', "file": 'str', "include[]": 'list[str]', "language": 'str', "max_speakers": 'int', "min_speakers": 'int', "model": 'str', "normalize": 'bool', "prompt": 'str', "response_format": 'TranscriptFormat', "speakers": 'bool', "stream": 'bool', "temperature": 'float', "timestamp_granularities[]": 'list[Timestamps]', "vad": 'bool'}, total=False)


class _TranscriptionJobRequired(TypedDict):
    file_id: str


class TranscriptionJob(_TranscriptionJobRequired, total=False):
    """Payload of a `transcription` job."""
    digits: Union[None, Digits]
    language: Union[str, None]
    logprobs: bool
    max_speakers: Union[int, None]
    min_speakers: Union[int, None]
    model: Union[str, None]
    normalize: Union[bool, None]
    prompt: Union[str, None]
    speakers: bool
    temperature: Union[float, None]
    timestamps: Timestamps
    translate: bool
    vad: Union[bool, None]
    vad_settings: Union[None, VadSettings]


TranslationForm = TypedDict("TranslationForm", {"chunking_strategy": 'str', "digits": 'str', "file": 'str', "include[]": 'list[str]', "max_speakers": 'int', "min_speakers": 'int', "model": 'str', "normalize": 'bool', "prompt": 'str', "response_format": 'TranscriptFormat', "speakers": 'bool', "stream": 'bool', "temperature": 'float', "timestamp_granularities[]": 'list[Timestamps]', "vad": 'bool'}, total=False)


class TriggerView(TypedDict):
    fire: FireView
    job: JobView


class UpdateEndpoint(TypedDict, total=False):
    """`PATCH /v1/webhook-endpoints/{id}` body: only the fields given change."""
    description: Union[str, None]
    enabled: Union[bool, None]
    event_types: Union[list[str], None]
    url: Union[str, None]


class UpdateTenant(TypedDict, total=False):
    """What to change; what is absent stays as it is."""
    audio_minutes_per_month: Union[int, None]
    burst: Union[int, None]
    emails_per_day: Union[int, None]
    jobs_per_day: Union[int, None]
    llm_tokens_per_month: Union[int, None]
    max_running: Union[dict[str, int], None]
    requests_per_second: Union[int, None]
    retention: Union[None, RetentionUpdate]
    sender_domains: Union[list[str], None]
    sms_per_day: Union[int, None]
    weight: Union[int, None]


class UploadForm(TypedDict):
    """The upload form (`multipart/form-data`)."""
    file: str


class UsageList(TypedDict):
    data: list[TenantUsage]
    periods: Periods


class Used(TypedDict):
    """Amounts used in the current periods."""
    audio_seconds: int
    emails: int
    jobs: int
    llm_tokens: int
    sms: int


class _UtteranceRequired(TypedDict):
    text: str


class Utterance(_UtteranceRequired, total=False):
    """One segment of a transcript: its text and speaker. Other fields of a"""
    speaker: Union[str, None]


class VadSettings(TypedDict, total=False):
    """How voice activity detection finds speech: OpenAI's `server_vad`"""
    min_silence_ms: Union[int, None]
    padding_ms: Union[int, None]
    threshold: Union[float, None]


class WebhookAttemptList(TypedDict):
    data: list[WebhookAttemptView]


class _WebhookAttemptViewRequired(TypedDict):
    attempt: int
    created_at: str
    endpoint_id: str
    id: int
    job_id: str
    latency_ms: float
    message_id: str


class WebhookAttemptView(_WebhookAttemptViewRequired, total=False):
    """One delivery attempt of a message to an endpoint."""
    error_code: Union[str, None]
    response_excerpt: Union[str, None]
    status_code: Union[int, None]


class WebhookEndpointList(TypedDict):
    data: list[WebhookEndpointView]


class _WebhookEndpointViewRequired(TypedDict):
    created_at: str
    enabled: bool
    event_types: list[str]
    id: str
    updated_at: str
    url: str


class WebhookEndpointView(_WebhookEndpointViewRequired, total=False):
    description: Union[str, None]
    disabled_reason: Union[str, None]
    failing_since: Union[str, None]
    previous_secret_expires_at: Union[str, None]
    secret: Union[str, None]


class _WebhookJobRequired(TypedDict):
    body: Any
    url: str


class WebhookJob(_WebhookJobRequired, total=False):
    """Payload of a `webhook` job."""
    event_type: Union[str, None]
    headers: Union[dict[str, str], None]
    secret: Union[str, None]
    timeout_seconds: Union[int, None]


class _WebhookMessageListRequired(TypedDict):
    data: list[WebhookMessageView]


class WebhookMessageList(_WebhookMessageListRequired, total=False):
    next_cursor: Union[str, None]


class WebhookMessageView(TypedDict):
    """A published event, with the exact body its endpoints receive."""
    created_at: str
    event_type: str
    id: str
    payload: Any


class _WebhookSecretViewRequired(TypedDict):
    secret: str


class WebhookSecretView(_WebhookSecretViewRequired, total=False):
    previous_secret_expires_at: Union[str, None]


AnalysisType: TypeAlias = 'Literal["symptoms", "soap_note", "triage", "medications", "summary", "generate"]'
BTreeMap: TypeAlias = 'dict[str, str]'
Digits: TypeAlias = 'Literal["persian", "latin"]'
Gateway: TypeAlias = 'Literal["zarinpal", "idpay", "bitpay", "stripe"]'
Language: TypeAlias = 'Literal["fa", "en"]'
Mobile: TypeAlias = 'str'
Sex: TypeAlias = 'Literal["female", "male", "other", "unknown"]'
SmsJob: TypeAlias = 'Union[SmsJob0, SmsJob1, SmsJobLookup, SmsJobCall]'
SubmitJob: TypeAlias = 'Union[SubmitWebhookJob, SubmitTranscriptionJob, SubmitSmsJob, SubmitEmailJob, SubmitMedicalAnalysisJob, SubmitPaymentVerificationJob, SubmitTaskJob]'
Timestamps: TypeAlias = 'Literal["segment", "word"]'
TranscriptFormat: TypeAlias = 'Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]'
