"""``make bench``: every benchmark at its default (CI-friendly) size.

Each prints its figures and the ratio to a baseline measured in the same run; the full sizes
of the issues are behind flags (see bench/RESULTS.md for the commands).
"""

from bench import drift_bench, gateway_bench, ingest_bench, ledger_bench, ledger_queries_bench

ingest_bench.main([])
ledger_bench.main([])
ledger_queries_bench.main([])
drift_bench.main([])
gateway_bench.main([])
from bench import drift_archive_bench  # noqa: E402 - appended, keeps merges easy

drift_archive_bench.main([])
from bench import jetstream_pull_bench  # noqa: E402 - appended, keeps merges easy

jetstream_pull_bench.main([])
from bench import peak_bench  # noqa: E402 - appended, keeps merges easy

peak_bench.main([])
