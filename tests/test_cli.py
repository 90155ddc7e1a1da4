import subprocess
import sys

from crossclear import __version__


def test_version_flag_prints_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crossclear", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"crossclear {__version__}"
