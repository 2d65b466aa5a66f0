"""Batch jobs in the OpenAI Batch format: rate-limited, retried, deduplicated and resumable.

``jobfile`` reads and writes the format, ``limiter`` keeps to RPM/TPM, ``engine`` answers the
lines, ``journal`` makes progress durable, ``runner`` ties them to files and providers.
"""

from thrifty.batching.engine import BatchEngine, BatchSettings, BatchSummary, Outcome
from thrifty.batching.jobfile import BatchRequest, parse_lines, read_jobfile
from thrifty.batching.journal import Journal
from thrifty.batching.limiter import BatchLimiter, TokenBucket
from thrifty.batching.runner import JobPaths, ProviderSet, run_job

__all__ = [
    "BatchEngine",
    "BatchLimiter",
    "BatchRequest",
    "BatchSettings",
    "BatchSummary",
    "JobPaths",
    "Journal",
    "Outcome",
    "ProviderSet",
    "TokenBucket",
    "parse_lines",
    "read_jobfile",
    "run_job",
]
