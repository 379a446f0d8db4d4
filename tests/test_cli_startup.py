"""`gqn --help` starts fast: importing the CLI loads no numpy, no family module and no image codec (they load
when a command or a help page needs them), and only the CLI talks to the terminal: the library's log records
reach it through the handler ``gqn.cli`` installs."""
import logging
import subprocess
import sys
from pathlib import Path

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "h5py", "deflate", "simplejpeg", "tqdm", "chainer")


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_importing_the_cli_loads_nothing_heavy():
    result = python("import sys, gqn.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
                    f"{HEAVY!r} or m.startswith('gqn.renderer') or m.startswith('gqn.runs')))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_pages_still_show_the_families_and_the_choices():
    for args, shown in ((["--help"], ["render", "convert", "train", "evaluate"]),
                        (["render", "--help"], ["mnist-dice", "rooms", "shepard-matzler"]),
                        (["train", "--help"], ["[mnist-dice|rooms|shepard-matzler]"]),
                        (["convert", "tfrecord", "--help"], ["jpeg", "gzip-9"])):
        result = run_cli(*args, check=True)
        for text in shown:
            assert text in result.out, (args, text)


def test_library_log_records_reach_the_terminal(capsys):
    from gqn.cli import _report_to_terminal

    _report_to_terminal()
    _report_to_terminal()  # once per process, however often the CLI runs in it
    logging.getLogger("gqn.example").info("a note 100%")
    logging.getLogger("gqn.example").warning("something odd")
    out, err = capsys.readouterr()
    assert out == "a note 100%\n" and err == "warning: something odd\n"
