from contextlib import nullcontext

from django.core.management.base import CommandError
from django.db import transaction

from progress.management.base import BatchCommand
from progress.management.commands.seed_dataset import SIZE_OPTIONS, SizedDataset
from progress.management.demo import (
    DEMO_USERNAMES,
    demo_password,
    describe_learners,
    load_demo,
    reset_all_data,
)


class Command(SizedDataset, BatchCommand):
    progress_label = "seed_demo"
    help = """\
Load demo data: a small named set to try the API with, or a large deterministic set.

With no size option (what `make run` does) it loads the named demo set once: the course
"Demo: Introduction to Python" with five content items; its owner and an instructor
(CourseStaff rows, is_staff so they can use the admin); a superuser "admin"; a system account
holding progress.update_any_progress; and learners at every stage (not started, in progress,
completed, certified, dropped), all made through the services as the API would. It prints the
accounts with their passwords (derived from SECRET_KEY, so stable for this installation) and
API tokens, and the admin URL. Accounts, the course or enrollments that already exist are left
as they are, so running it again changes nothing.

With any of --courses, --contents, --learners or --seed it makes the large deterministic set
for benchmarks instead, exactly as `manage.py seed_dataset` does (see its --help); the options
stay here for existing scripts.

With --reset it first deletes every row of every table (users, courses, progress: all of it,
as `manage.py flush` does, ids starting from 1 again) and then loads the named set: the demo as
`make run` made it on a fresh clone (`make reset-demo` does this). It asks before deleting
unless --no-input is given.

With --password-of USERNAME it prints only that demo account's password (for scripts, such as
the README's examples) and changes nothing.

Examples:
  manage.py seed_demo
  manage.py seed_demo --reset --no-input
  manage.py seed_demo --password-of demo_active
  manage.py seed_demo --courses 20 --contents 100 --learners 500    # one million rows
"""
    default_batch_size = 20_000
    batch_help = (
        "Large set only: progress rows per batch (whole learners); each batch is one "
        "transaction. Default: %(default)s."
    )

    def add_arguments(self, parser):
        self.add_size_arguments(parser)
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete all data (every table) first, then load the named demo set.",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="With --reset: do not ask before deleting.",
        )
        parser.add_argument(
            "--password-of",
            metavar="USERNAME",
            choices=DEMO_USERNAMES,
            help="Print this demo account's password and nothing else; changes nothing.",
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the server runs, for the URLs printed at the end. Default: %(default)s.",
        )
        super().add_arguments(parser)

    def handle(self, *args, **options):
        if options["password_of"]:
            self.stdout.write(demo_password(options["password_of"]))
            return
        bulk = any(options[name] is not None for name in SIZE_OPTIONS)
        if options["reset"]:
            if bulk or options["dry_run"]:
                raise CommandError("--reset loads the named demo set; it takes no size options.")
            if (
                options["interactive"]
                and input(
                    "This deletes every row of every table in the database, then loads the demo "
                    "set. Type 'yes' to go on: "
                )
                != "yes"
            ):
                raise CommandError("Reset cancelled; nothing changed.")
            reset_all_data()
        # A dry run does everything in one transaction and rolls it back; a real run commits
        # batch by batch, so an interrupted large run keeps its work and the next run resumes.
        with transaction.atomic() if options["dry_run"] else nullcontext():
            result = self.seed_dataset(options) if bulk else load_demo()
            if options["dry_run"]:
                transaction.set_rollback(True)
        if bulk:
            self.print_dataset(result, options)
        else:
            self._print_demo(result, options)
        self.finish(result.summary, options, what="objects")

    # --- named set ----------------------------------------------------------------------------

    def _print_demo(self, result, options):
        if options["verbosity"] < 1:
            return
        out = self.stdout
        base = options["base_url"].rstrip("/")
        course = result.course
        state = "loaded" if result.summary.changed else "already loaded; nothing changed"
        if options["dry_run"]:
            out.write(f"Demo set: would load {result.summary.changed} objects.")
            return
        out.write(f'Demo set {state}: course {course.pk} "{course.title}".')
        out.write("Accounts (password, API token, what they can do):")
        learners = describe_learners(course, [u for a, u, _ in result.accounts if a.stage])
        for account, user, token in result.accounts:
            role = learners.get(user.pk, account.role) if account.stage else account.role
            out.write(
                f"  {account.username:<16} password {demo_password(account.username)}  "
                f"token {token}  user {user.pk}: {role}"
            )
        out.write(
            "  (passwords are set when an account is created; an account that existed before "
            "keeps its own)"
        )
        out.write(f"Admin: {base}/admin/")
        learner = next(user for account, user, _ in result.accounts if account.stage)
        out.write(f"API docs: {base}/api/docs/")
        out.write(
            f"Try: curl -H 'Authorization: Token <token>' "
            f"{base}/user-progress/{course.pk}/{learner.pk}"
        )
        out.write('More examples, ready to paste: README.md, "Try the API" (docs/examples.sh).')
