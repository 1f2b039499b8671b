"""What every manage.py command shares: its help and its progress output."""

import pytest
from django.core.management import call_command, load_command_class

from tests.commands.tools import (
    COMMANDS,
    run,
)

# --- every command ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_explains_itself_and_every_option(name, capsys):
    command = load_command_class("progress", name)
    parser = command.create_parser("manage.py", name)
    undocumented = [action.dest for action in parser._actions if not action.help]
    assert undocumented == []
    assert len(command.help) > 300  # a description, not a title

    with pytest.raises(SystemExit) as exit_:
        call_command(name, "--help")
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert command.help.splitlines()[0] in text
    assert "--batch-size" in text
    assert "--progress" in text
    assert ("--dry-run" in text) == (name != "export_progress")


def test_progress_goes_to_stderr_only_when_asked(db, course, learner, enrolled):
    _, quiet_err = run("backfill_enrollment_status")
    assert quiet_err == ""  # captured stderr is no terminal: no progress line
    _, err = run("backfill_enrollment_status", "--progress")
    assert "backfill: 1/1 enrollments (100%)" in err
