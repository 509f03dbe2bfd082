"""The knobs of fetching and auditing, with their defaults in one place: read by the client, the
auditor and the command line (each field names its CLI option). No HTTP here, so building the
command line does not load the network stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError
from .paging import MB, PageLimits

DEFAULT_BASE_URL = "https://api.x.com"
IDENTITY_KEY_ENV = "XCHAT_VERIFY_IDENTITY_KEY_FILE"  # names the participant's key file (--identity-key)
# ledger compare's stale_view tolerance, seconds: clock skew between two auditors' machines plus an
# audit's duration (the CLI's default and verifier.ledger.transcript.stale_view's)
DEFAULT_TOLERANCE = 300.0


@dataclass
class RetryPolicy:
    """Retries and per-response budgets (the CLI option of each field is named beside it)."""

    max_retries: int = 6  # --max-retries
    backoff_base: float = 0.5  # --backoff-base
    backoff_cap: float = 60.0
    max_wait: float = 900.0  # --max-wait: longest rate-limit wait we accept before giving up
    timeout: float = 30.0  # --timeout: per socket operation (connect, each read)
    request_deadline: float = 120.0  # --request-deadline: a whole request, however the server drips
    max_body_bytes: int = 8 * 1024 * 1024  # --max-response-mb: decoded bytes of any one response
    max_json_values: int = 200_000  # --max-json-values: JSON values in any one response (bound)


@dataclass
class AuditOptions:
    """What to fetch and how far to go (the CLI option of each limit is named beside it)."""

    max_results: int = 100
    max_pages: int | None = 10_000  # --max-pages: per conversation and run
    max_conversation_bytes: int | None = 1024 * MB  # --max-conversation-mb
    max_conversation_seconds: float | None = 3 * 3600.0  # --max-conversation-seconds
    max_empty_pages: int | None = 20  # --max-empty-pages: pages in a row without a new event
    max_token_length: int = 1024  # --max-token-length
    max_page_items: int = 300  # --max-page-items
    max_users: int | None = 1000  # --max-users: users whose keys are fetched
    concurrency: int = 4
    save_dir: str | None = None
    resume: bool = False
    force: bool = False  # --force: resume evidence fetched from another base URL
    strict: bool = False
    allow_embedded_keys: bool = False
    allow_empty: bool = False
    allow_partial: bool = False
    conversation_keys: dict[str, bytes] = field(default_factory=dict)
    workers: int | None = None
    reviewers: tuple | None = None  # --identity-key: engine reviewers (None: the default checks)
    fallback_keys: list = field(default_factory=list)  # KeyringEntry rows a ledger kept (--ledger)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """``UsageError`` for options that would be silently ignored (review 51): ``resume`` and
        ``force`` only say what to do with the evidence in ``save_dir``, as ``--resume`` and
        ``--force`` need ``--save DIR``."""
        for name in ("resume", "force"):
            if getattr(self, name) and not self.save_dir:
                raise UsageError(f"AuditOptions: {name}=True needs save_dir (the evidence directory it applies to)")

    def page_limits(self) -> PageLimits:
        return PageLimits(max_pages=self.max_pages, max_bytes=self.max_conversation_bytes,
                          max_seconds=self.max_conversation_seconds, max_empty_pages=self.max_empty_pages,
                          max_token_length=self.max_token_length, max_page_items=self.max_page_items)
