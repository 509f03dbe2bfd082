"""Verify archives of saved histories on a Dask cluster: the same Report ``verify`` gives, faster.

    from verifier.archive import verify_archive
    report = verify_archive(["evidence/2026-11", "evidence/2026-12"], keyring=None)   # a local cluster
    report = verify_archive(["s3://bucket/pages/"], keyring, client=distributed.Client("tcp://sched:8786"))

How the work is cut (docs/scale.md): each SOURCE group (``sources``) is one engine run, split into
tasks of a few MB of pages; phase 1 decodes and checks signatures per task, phase 2 concludes the
conversations each task holds whole and joins the few held by several (their chain is checked
whole), and the engine's part API assembles the Report on the coordinator (``coordinate``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ..audit import scrub_report, secret_scrubber
from ..errors import UsageError
from ..inputs import DEFAULT_MAX_FILE_MB, path_list, refuse_one_value
from ..keys import Keyring
from ..model import Report
from .coordinate import Executor, InProcess, LedgerRecording, Progress, combine, verify_groups
from .sources import PAGE_SUFFIXES, discover

__all__ = ["verify_archive", "Progress", "PAGE_SUFFIXES", "InProcess", "Executor", "combine"]


def verify_archive(sources: Sequence[str | os.PathLike[str]], keyring: Keyring | None = None, client: Any = None, *,
                   conversation_keys: Mapping[str, bytes] | None = None, allow_embedded_keys: bool = False,
                   allow_empty: bool = False, allow_partial: bool = False, strict: bool = False,
                   max_file_mb: int = DEFAULT_MAX_FILE_MB, workers: int | None = None,
                   on_progress: Callable[[Progress], None] | None = None, task_bytes: int | None = None,
                   ledger: Any = None, trust_evidence_keys: bool = False, secrets: Collection[str] = ()) -> Report:
    """Verify page files, evidence directories and trees of them; the Report ``verify`` gives.

    ``client``: a ``distributed.Client`` to run on; None starts a local cluster of ``workers``
    processes (default one per core) for this call; an ``InProcess()`` runs here without Dask.
    ``keyring`` replaces the saved keys of evidence directories, as ``verify DIR --keys`` does;
    without it their saved keys are used and authenticate nothing (``evidence_keys_unauthenticated``,
    an error unless ``trust_evidence_keys``), as for ``verify DIR``.
    ``ledger``: an open ``verifier.ledger.LedgerStore``; each group is then judged and recorded as
    ``verify --ledger`` of it would be (its keys fill slots the keyring lacks).
    ``secrets``: texts (the access token, when a source path holds it) that the Report and the
    ledger's rows must not hold: each is replaced by ``[redacted]``.
    Raises ``UsageError`` (``-`` as a source, Dask missing) and ``ClusterError`` (scheduler
    unreachable, workers lost); unreadable inputs are input errors in the Report, never raised.
    """
    if keyring is not None and trust_evidence_keys:  # as verify_saved_audit (review 69)
        raise UsageError("trust_evidence_keys trusts evidence directories' saved keys, which keyring replaces: give one")
    groups = discover(path_list(sources, "verify_archive"))
    options: dict[str, Any] = dict(conversation_keys=dict(conversation_keys or {}), allow_embedded_keys=allow_embedded_keys,
                                   allow_empty=allow_empty, allow_partial=allow_partial, strict=strict)
    given = _secrets(secrets)
    recording = None
    if ledger is not None:
        from ..ledger import fallback_entries
        recording = LedgerRecording(ledger, key_source="keyring" if keyring is not None else "evidence",
                                    fallback=fallback_entries(ledger), secrets=given)
    run: dict[str, Any] = dict(keyring=keyring, options=options, max_bytes=max_file_mb * 1024 * 1024,
                               on_progress=on_progress, target_bytes=task_bytes, ledger=recording,
                               trust_evidence_keys=trust_evidence_keys)
    if isinstance(client, InProcess):
        report = verify_groups(groups, client, workers=1, **run)
    else:
        from .cluster import DaskExecutor, open_client, worker_count
        if client is not None:
            report = verify_groups(groups, DaskExecutor(client), workers=worker_count(client), **run)
        else:
            with open_client(None, workers) as local:
                report = verify_groups(groups, DaskExecutor(local), workers=worker_count(local), **run)
    return scrub_report(report, [secret_scrubber(set(given))]) if given else report


def _secrets(secrets: Collection[str]) -> frozenset[str]:
    """``verify_archive``'s ``secrets``, checked: texts, empty ones left out."""
    refuse_one_value(secrets, "verify_archive secrets", "texts")
    if any(not isinstance(secret, str) for secret in secrets):
        raise UsageError("verify_archive: secrets must be texts")
    return frozenset(secret for secret in secrets if secret)
