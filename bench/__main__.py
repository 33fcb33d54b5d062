"""``make bench``: every benchmark, each printing its ratio to an in-run baseline."""

from bench import ingest_bench

ingest_bench.main([])
