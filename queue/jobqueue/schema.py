"""The job queue's tables, as ``sqlite_utils`` migrations (the set named "jobqueue").

``jobs`` holds one row per clip. ``version`` is a sequence number every change to a job
advances (unique, indexed): the change stream follows it, so two changes in the same
clock tick are never confused. ``request_key`` sums up the options that decide how long a
job takes; ``shape_key`` (model and width x height x frames x steps) is written once the
worker has resolved them: together they give ETAs (see eta.py).

``queue_users`` keeps, per user, how many jobs wait and run (maintained by triggers, so no
code path can forget) and ``served_seq``, the claim sequence number of the user's most
recent job: the scheduler serves the user with the lowest (see scheduling.py).
"""

from __future__ import annotations

import sqlite_utils

from jobqueue.models import JobStatus
from jobqueue.sql import IS_DONE, IS_QUEUED, IS_RUNNING, IS_TERMINAL, literal

MIGRATIONS = sqlite_utils.Migrations("jobqueue")

SERVER_SCOPE = 0
"""``queue_limits.user_id`` of the server-wide row (Discord ids are never 0)."""

_QUEUED = literal(JobStatus.QUEUED)
_RUNNING = literal(JobStatus.RUNNING)


@MIGRATIONS()
def create_jobs(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            request TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            guild_id INTEGER,
            channel_id INTEGER,
            parent_id INTEGER,
            idempotency_key TEXT UNIQUE,
            priority INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            stage TEXT NOT NULL DEFAULT 'waiting',
            step INTEGER NOT NULL DEFAULT 0,
            total_steps INTEGER NOT NULL DEFAULT 0,
            worker_id TEXT,
            lease_expires_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            rewritten_prompt TEXT,
            rewrite_note TEXT,
            seed INTEGER,
            model TEXT,
            result_path TEXT,
            width INTEGER,
            height INTEGER,
            frames INTEGER,
            fps INTEGER,
            error TEXT,
            error_detail TEXT,
            status_message_id INTEGER,
            result_message_id INTEGER,
            delivered_at REAL,
            request_key TEXT NOT NULL,
            shape_key TEXT,
            run_seconds REAL,
            version INTEGER NOT NULL
        )
        """
    )
    for statement in (
        "CREATE UNIQUE INDEX jobs_version ON jobs (version)",
        "CREATE INDEX jobs_updated_at ON jobs (updated_at)",
        # Each user's best waiting job (see track_user_heads).
        f"CREATE INDEX jobs_queued_by_user ON jobs (user_id, priority DESC, id) WHERE {IS_QUEUED}",
        f"CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE {IS_RUNNING}",
        "CREATE INDEX jobs_user_created ON jobs (user_id, created_at)",
        # ETAs: recent finished jobs asked for the same way, and of the same model and shape.
        f"CREATE INDEX jobs_done_by_request ON jobs (request_key, finished_at) WHERE {IS_DONE}",
        f"CREATE INDEX jobs_done_by_shape ON jobs (shape_key, finished_at) WHERE {IS_DONE}",
        "CREATE INDEX jobs_finished ON jobs (finished_at, status) WHERE finished_at IS NOT NULL",
        "CREATE INDEX jobs_undelivered ON jobs (finished_at)"
        f" WHERE delivered_at IS NULL AND {IS_TERMINAL}",
    ):
        db.execute(statement)


@MIGRATIONS()
def create_queue_users(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE queue_users (
            user_id INTEGER PRIMARY KEY,
            waiting INTEGER NOT NULL DEFAULT 0,
            running INTEGER NOT NULL DEFAULT 0,
            served_seq INTEGER NOT NULL DEFAULT 0,
            last_served_at REAL
        )
        """
    )
    db.execute("CREATE INDEX queue_users_turn ON queue_users (served_seq) WHERE waiting > 0")
    db.execute("CREATE INDEX queue_users_served ON queue_users (served_seq)")
    for statement in _COUNT_TRIGGERS:
        db.execute(statement)


_COUNT_TRIGGERS = (
    f"""
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT OR IGNORE INTO queue_users (user_id) VALUES (NEW.user_id);
        UPDATE queue_users SET
            waiting = waiting + (NEW.status = {_QUEUED}),
            running = running + (NEW.status = {_RUNNING})
        WHERE user_id = NEW.user_id;
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status != NEW.status BEGIN
        UPDATE queue_users SET
            waiting = waiting - (OLD.status = {_QUEUED}) + (NEW.status = {_QUEUED}),
            running = running - (OLD.status = {_RUNNING}) + (NEW.status = {_RUNNING})
        WHERE user_id = NEW.user_id;
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE queue_users SET
            waiting = waiting - (OLD.status = {_QUEUED}),
            running = running - (OLD.status = {_RUNNING})
        WHERE user_id = OLD.user_id;
    END
    """,
)


@MIGRATIONS()
def create_settings_tables(db: sqlite_utils.Database) -> None:
    # NULL in a limit column means "inherit": a user's row from the server row, the server
    # row from the defaults the queue was opened with.
    db.execute(
        """
        CREATE TABLE queue_limits (
            user_id INTEGER PRIMARY KEY,
            waiting INTEGER,
            running INTEGER,
            daily INTEGER
        )
        """
    )
    db.execute("CREATE TABLE queue_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """
        CREATE TABLE workers (
            worker_id TEXT PRIMARY KEY,
            pid INTEGER,
            host TEXT,
            model TEXT,
            started_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            stopped_at REAL
        )
        """
    )


@MIGRATIONS()
def track_user_heads(db: sqlite_utils.Database) -> None:
    """Keep each user's best waiting job on their ``queue_users`` row.

    The scheduler then finds the next job with one seek in ``queue_users_next`` instead of
    sorting the waiting jobs of every user who has never been served.
    """
    db.execute("ALTER TABLE queue_users ADD COLUMN head_priority INTEGER")
    db.execute("ALTER TABLE queue_users ADD COLUMN head_id INTEGER")
    db.execute(f"UPDATE queue_users SET {_head_assignment('queue_users.user_id')}")
    db.execute(
        "CREATE INDEX queue_users_next ON queue_users"
        " (served_seq, head_priority DESC, head_id) WHERE waiting > 0"
    )
    db.execute(
        f"""
        CREATE TRIGGER jobs_head_insert AFTER INSERT ON jobs WHEN NEW.status = {_QUEUED} BEGIN
            INSERT OR IGNORE INTO queue_users (user_id) VALUES (NEW.user_id);
            UPDATE queue_users SET {_head_assignment("NEW.user_id")}
            WHERE user_id = NEW.user_id;
        END
        """
    )
    db.execute(
        f"""
        CREATE TRIGGER jobs_head_update AFTER UPDATE OF status ON jobs
        WHEN OLD.status != NEW.status AND {_QUEUED} IN (OLD.status, NEW.status) BEGIN
            UPDATE queue_users SET {_head_assignment("NEW.user_id")}
            WHERE user_id = NEW.user_id;
        END
        """
    )


def _head_assignment(user: str) -> str:
    """Set the best waiting job (highest priority, then oldest) of the user ``user`` names.

    Its WHERE clause matches jobs_queued_by_user's, so the lookup is one index seek.
    """
    return f"""(head_priority, head_id) = (
    SELECT priority, id FROM jobs WHERE {IS_QUEUED} AND user_id = {user}
    ORDER BY priority DESC, id LIMIT 1
)"""


@MIGRATIONS()
def count_jobs_by_status(db: sqlite_utils.Database) -> None:
    """``queue_counts`` holds how many jobs are in each status, kept by triggers.

    Every submit checks the queue-wide cap; counting the waiting jobs instead grew with
    the queue (0.3 ms at 5,000 waiting).
    """
    db.execute("CREATE TABLE queue_counts (status TEXT PRIMARY KEY, jobs INTEGER NOT NULL)")
    db.execute("INSERT INTO queue_counts SELECT status, COUNT(*) FROM jobs GROUP BY status")
    for statement in _STATUS_COUNT_TRIGGERS:
        db.execute(statement)


_STATUS_COUNT_TRIGGERS = (
    """
    CREATE TRIGGER jobs_status_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO queue_counts (status, jobs) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET jobs = jobs + 1;
    END
    """,
    """
    CREATE TRIGGER jobs_status_count_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status != NEW.status BEGIN
        UPDATE queue_counts SET jobs = jobs - 1 WHERE status = OLD.status;
        INSERT INTO queue_counts (status, jobs) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET jobs = jobs + 1;
    END
    """,
    """
    CREATE TRIGGER jobs_status_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE queue_counts SET jobs = jobs - 1 WHERE status = OLD.status;
    END
    """,
)


@MIGRATIONS()
def add_timings(db: sqlite_utils.Database) -> None:
    """Seconds each stage of a finished job took (JSON), for the bot's embed and benchmarks."""
    db.execute("ALTER TABLE jobs ADD COLUMN timings TEXT")


@MIGRATIONS()
def add_output_safety(db: sqlite_utils.Database) -> None:
    """What the output safety check found in each clip, and what became of a clip it held.

    The worker writes the verdict (off, safe, unsafe or unchecked), the worst score per
    category (JSON), the categories over their thresholds (JSON) and ``safety_hold`` (1: never
    post it in an ordinary channel) before the job is done. The bot then records the held
    clip's state (withheld, spoilered, released, deleted), who changed it and when. A server's
    policy lives in ``safety_policies``; NULL columns take the settings' defaults.
    """
    for column in (
        "safety_verdict TEXT",
        "safety_scores TEXT",
        "safety_flagged TEXT",
        "safety_hold INTEGER NOT NULL DEFAULT 0",
        "safety_state TEXT",
        "safety_state_at REAL",
        "safety_state_by INTEGER",
    ):
        db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
    db.execute(
        "CREATE INDEX jobs_withheld ON jobs (guild_id, finished_at) WHERE safety_state = 'withheld'"
    )
    db.execute(
        """
        CREATE TABLE safety_policies (
            guild_id INTEGER PRIMARY KEY,
            mode TEXT,
            thresholds TEXT,
            strikes INTEGER,
            if_unchecked TEXT
        )
        """
    )


@MIGRATIONS()
def add_gallery(db: sqlite_utils.Database) -> None:
    """What the web gallery, its search and its metrics need.

    ``gallery_channels`` holds the channels a server's admins made public (``/admin gallery
    allow``) or private again, with the names shown in the gallery's filters. ``deleted_at``
    marks a clip deleted in Discord: its page answers 410 and its files are not served.
    ``gallery_search`` indexes each job's prompt and rewritten scene by word (kept by
    triggers). ``gpu_memory_bytes`` is what each worker last reported for /metrics.
    """
    db.execute(
        """
        CREATE TABLE gallery_channels (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            public INTEGER NOT NULL,
            guild_name TEXT NOT NULL DEFAULT '',
            channel_name TEXT NOT NULL DEFAULT '',
            set_by INTEGER,
            set_at REAL,
            PRIMARY KEY (guild_id, channel_id)
        )
        """
    )
    db.execute("ALTER TABLE jobs ADD COLUMN deleted_at REAL")
    db.execute("ALTER TABLE workers ADD COLUMN gpu_memory_bytes INTEGER")
    for statement in (
        f"CREATE INDEX jobs_gallery ON jobs (channel_id, finished_at) WHERE {IS_DONE}",
        "CREATE INDEX jobs_children ON jobs (parent_id) WHERE parent_id IS NOT NULL",
        "CREATE INDEX jobs_delivered ON jobs (delivered_at) WHERE delivered_at IS NOT NULL",
        "CREATE VIRTUAL TABLE gallery_search USING fts5"
        "(prompt, scene, tokenize = 'unicode61 remove_diacritics 2')",
        "INSERT INTO gallery_search (rowid, prompt, scene)"
        f" SELECT id, {_PROMPT_OF_ROW}, rewritten_prompt FROM jobs",
        *_SEARCH_TRIGGERS,
    ):
        db.execute(statement)


_PROMPT_OF_ROW = "json_extract(request, '$.prompt')"
_SEARCH_TRIGGERS = (
    """
    CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO gallery_search (rowid, prompt, scene)
        VALUES (NEW.id, json_extract(NEW.request, '$.prompt'), NEW.rewritten_prompt);
    END
    """,
    """
    CREATE TRIGGER jobs_search_scene AFTER UPDATE OF rewritten_prompt ON jobs
    WHEN OLD.rewritten_prompt IS NOT NEW.rewritten_prompt BEGIN
        UPDATE gallery_search SET scene = NEW.rewritten_prompt WHERE rowid = NEW.id;
    END
    """,
    """
    CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs BEGIN
        DELETE FROM gallery_search WHERE rowid = OLD.id;
    END
    """,
)


@MIGRATIONS()
def gallery_newest_first(db: sqlite_utils.Database) -> None:
    """The gallery's newest-first pages walk an index instead of sorting every done job
    (50,000 done jobs: 180 ms a page before, under 1 ms after)."""
    db.execute(f"CREATE INDEX jobs_done_newest ON jobs (finished_at, id) WHERE {IS_DONE}")


@MIGRATIONS()
def add_scenes(db: sqlite_utils.Database) -> None:
    """Scenes written ahead of the render (see scenes.py).

    ``scenes`` has a row for each job whose scene someone took on (none yet: no row): being
    written under a lease by ``writer_id``, ready (``scene`` NULL: the user's own words, for
    ``reason``), edited by the job's owner, or not wanted (the job went ahead without it).
    ``scene_writers`` holds the processes that write them, alive while their lease is current,
    so a worker knows whether to wait for a scene.
    """
    db.execute(
        """
        CREATE TABLE scenes (
            job_id INTEGER PRIMARY KEY,
            state TEXT NOT NULL,
            scene TEXT,
            reason TEXT,
            backend TEXT,
            model TEXT,
            seconds REAL NOT NULL DEFAULT 0,
            writer_id TEXT,
            lease_expires_at REAL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE scene_writers (
            writer_id TEXT PRIMARY KEY,
            pid INTEGER,
            host TEXT,
            started_at REAL NOT NULL,
            lease_expires_at REAL NOT NULL,
            stopped_at REAL
        )
        """
    )


@MIGRATIONS()
def add_remote_workers(db: sqlite_utils.Database) -> None:
    """Workers on other hosts, the attempts sent to them through the broker, and why a job
    waits.

    ``workers.kind`` is ``local`` (a process on the bot's host, on this file) or ``remote``
    (registered with the broker; the bot's dispatcher keeps its row). ``models`` lists the
    models a worker serves (JSON; NULL: any), ``max_video_pixels`` the largest clip it takes
    (width x height x frames; NULL: any size) and ``gpu_total_bytes`` its card's memory.
    ``broker_dispatches`` holds a row per attempt sent through the broker: the SAQ queue and
    job key it went out under and whether it is still the job's current attempt (``live``) or
    one whose late answer must be thrown away (``stale``). ``jobs.wait_note`` tells the
    requester why a waiting job does not start; ``unserved_since`` is when it was first seen
    with no live worker able to run it.
    """
    for statement in (
        "ALTER TABLE workers ADD COLUMN kind TEXT NOT NULL DEFAULT 'local'",
        "ALTER TABLE workers ADD COLUMN models TEXT",
        "ALTER TABLE workers ADD COLUMN max_video_pixels INTEGER",
        "ALTER TABLE workers ADD COLUMN gpu_total_bytes INTEGER",
        "ALTER TABLE jobs ADD COLUMN wait_note TEXT",
        "ALTER TABLE jobs ADD COLUMN unserved_since REAL",
        """
        CREATE TABLE broker_dispatches (
            job_id INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            worker_id TEXT NOT NULL,
            queue TEXT NOT NULL,
            key TEXT NOT NULL,
            state TEXT NOT NULL,
            sent_at REAL NOT NULL,
            PRIMARY KEY (job_id, attempt)
        )
        """,
        "CREATE INDEX broker_dispatches_state ON broker_dispatches (state)",
    ):
        db.execute(statement)


@MIGRATIONS()
def add_storyboards(db: sqlite_utils.Database) -> None:
    """Storyboards (see storyboards.py): a film planned as shots, each shot a job.

    ``storyboards`` holds the plan (JSON), its state (planned, shooting, done, failed,
    cancelled), the current ``take`` (1 at Shoot, one more at each Reshoot; 0 before), the
    film job of the current take once made, the thread the bot made for it and the message
    with the plan. ``storyboard_shots`` lists each take's shot jobs: a Reshoot from shot N
    keeps the jobs of shots 1 to N-1, so one job may be a shot of several takes.
    ``storyboard_films`` lists every take's film job (the film of an earlier take stays up).
    """
    for statement in (
        """
        CREATE TABLE storyboards (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL,
            guild_id INTEGER,
            channel_id INTEGER,
            thread_id INTEGER,
            plan_message_id INTEGER,
            plan TEXT NOT NULL,
            state TEXT NOT NULL,
            take INTEGER NOT NULL DEFAULT 0,
            take_started_at REAL,
            film_job_id INTEGER,
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE storyboard_shots (
            storyboard_id INTEGER NOT NULL REFERENCES storyboards (id),
            take INTEGER NOT NULL,
            shot INTEGER NOT NULL,
            job_id INTEGER NOT NULL,
            PRIMARY KEY (storyboard_id, take, shot)
        )
        """,
        "CREATE INDEX storyboard_shots_job ON storyboard_shots (job_id)",
        """
        CREATE TABLE storyboard_films (
            job_id INTEGER PRIMARY KEY,
            storyboard_id INTEGER NOT NULL REFERENCES storyboards (id),
            take INTEGER NOT NULL
        )
        """,
        "CREATE INDEX storyboards_shooting ON storyboards (state) WHERE state = 'shooting'",
    ):
        db.execute(statement)


@MIGRATIONS()
def add_storyboard_join_lease(db: sqlite_utils.Database) -> None:
    """Who is joining a storyboard's film (``joining_by``, a token) and until when: each
    idle worker and the dispatcher sweep storyboards, and only one of them may join a film;
    a lease that was not renewed (its process died) lets the next sweep join it."""
    db.execute("ALTER TABLE storyboards ADD COLUMN joining_by TEXT")
    db.execute("ALTER TABLE storyboards ADD COLUMN joining_until REAL")


def all_migrations() -> list[sqlite_utils.Migrations]:
    """Every migration set in the shared database file: the queue's, then moderation's."""
    from jobqueue.moderation import MIGRATIONS as moderation_migrations

    return [MIGRATIONS, moderation_migrations]
