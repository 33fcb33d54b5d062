"""The ledger service's configuration, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import (
    ConfigError,
    database_url,
    env_float,
    env_int,
    env_str,
    nats_url,
    redacted_repr,
)


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    database_url: str
    nats_url: str
    ingest_grpc_addr: str
    host: str
    grpc_port: int
    admin_port: int
    consumer_name: str
    consume: bool  # run the JetStream consumer (off for replay-only processes)
    batch_size: int  # messages fetched and committed together
    fetch_timeout: float  # seconds a fetch waits for the first message
    ack_wait: float  # seconds JetStream waits for an ack before redelivering
    dead_letter_after: int  # deliveries of a failing message before it is set aside
    replay_batch_size: int
    replay_workers: int  # processes projecting replayed events (0: in the event loop)
    stream_max_age_days: float
    log_level: str
    # Bind the ports with SO_REUSEPORT: set in each copy run by LEDGER_PROCESSES (or by hand).
    reuse_port: bool = False
    # Where the consumer projects: 1 in a worker process (its GIL away from the event loop that
    # writes the previous batch), 0 in a thread of this process. The worker made the live run
    # 1.03-1.21x faster at load ~3 on the 2-core bench machine, same run; at load 4-8, when
    # every process waits for a core, it changed nothing and cost up to ~10-25% more ledger CPU
    # (bench/RESULTS.md, issue 12 seventh pass).
    consumer_workers: int = 0
    # A catch-up's first fetch asks for this many, doubling while fetches come back full, up
    # to ``batch_size``; a short fetch starts over (0: every fetch asks for ``batch_size``).
    batch_ramp_from: int = 2000
    # At most this many bytes of messages per pull request: half of nats-server's default
    # max_pending (64 MB), the unread bytes after which it cuts a client as a slow consumer
    # (services/ledger/jetstream_pull.py). Lower it with the server's max_pending.
    fetch_max_bytes: int = 32 << 20

    @property
    def server_max_deliver(self) -> int:
        """JetStream's own bound: above ours, so the dead-letter write gets a second chance.

        The consumer stops fetching while PostgreSQL is down, so an outage does not burn
        deliveries; only messages that fail on their own reach either bound.
        """
        return self.dead_letter_after * 2

    # Secrets (webhook secrets, API keys, database passwords) never appear in a repr.
    __repr__ = redacted_repr

    @classmethod
    def from_env(cls) -> LedgerSettings:
        dead_after = env_int("LEDGER_DEAD_LETTER_AFTER", 5)
        if dead_after < 1:
            raise ConfigError("LEDGER_DEAD_LETTER_AFTER must be at least 1")
        # At most 16,000 per transaction (and LEDGER_FETCH_MAX_BYTES per fetch), the first
        # fetch of a catch-up 2000, doubling while fetches come back full: a live write has a
        # fixed cost per transaction (round trips, the query_* flush, the commit), so a backlog
        # written in batches of 8000 costs the ledger's PostgreSQL backend ~0.75x the CPU per
        # event of batches of 2000 (bench/RESULTS.md, issue 12 eighth pass), and 16,000 ~0.8x
        # that of 8000 (30.1 vs 37.9 us); the live bench consumed 1.04-1.09x the rows/s with
        # 16,000 in three same-run pairs, for +28 MiB peak RSS (tenth pass). The first rows
        # still wait for only 2000 to be fetched and projected; 2000 itself consumed 1.5-1.6x
        # the events/s of 256 (third pass). A fetch returns at once with what is there (a
        # no-wait pull), so a trickle of events is not held back to fill a batch.
        batch = env_int("LEDGER_BATCH_SIZE", 16000)
        workers = env_int("LEDGER_CONSUMER_WORKERS", 0)
        if workers not in (0, 1):  # one batch is projected at a time: a second would idle
            raise ConfigError("LEDGER_CONSUMER_WORKERS must be 0 (a thread) or 1 (a process)")
        if batch < 1:
            raise ConfigError("LEDGER_BATCH_SIZE must be at least 1")
        fetch_max_bytes = env_int("LEDGER_FETCH_MAX_BYTES", 32 << 20)
        if fetch_max_bytes < 1:
            raise ConfigError("LEDGER_FETCH_MAX_BYTES must be at least 1")
        ingest_port = env_int("INGEST_GRPC_PORT", 50051)
        return cls(
            database_url=database_url(),
            nats_url=nats_url(),
            ingest_grpc_addr=env_str("INGEST_GRPC_ADDR", f"127.0.0.1:{ingest_port}"),
            host=env_str("LEDGER_HOST", "0.0.0.0"),
            grpc_port=env_int("LEDGER_GRPC_PORT", 50052),
            admin_port=env_int("LEDGER_ADMIN_PORT", 9092),
            consumer_name=env_str("LEDGER_CONSUMER_NAME", "ledger"),
            consume=env_str("LEDGER_CONSUME", "1") not in ("0", "false", "no"),
            batch_size=batch,
            fetch_timeout=env_float("LEDGER_FETCH_TIMEOUT", 0.5),
            ack_wait=env_float("LEDGER_ACK_WAIT", 30.0),
            dead_letter_after=dead_after,
            replay_batch_size=env_int("LEDGER_REPLAY_BATCH_SIZE", 2000),
            # One worker process: projection (CPU) overlaps the writes; 0 keeps it in-line.
            replay_workers=env_int("LEDGER_REPLAY_WORKERS", 1),
            stream_max_age_days=env_float("NATS_STREAM_MAX_AGE_DAYS", 30.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
            reuse_port=env_str("LEDGER_REUSE_PORT", "0") not in ("0", "false", "no", ""),
            consumer_workers=workers,
            batch_ramp_from=max(env_int("LEDGER_BATCH_RAMP_FROM", 2000), 0),
            fetch_max_bytes=fetch_max_bytes,
        )
