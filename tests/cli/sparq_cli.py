"""Running the ``sparq`` command in-process from the tests."""

from sparq.cli import main

__all__ = ["run"]


def run(capsys, *argv):
    """Run ``sparq *argv``; return ``(exit code, stdout, stderr)``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
