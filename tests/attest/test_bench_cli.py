import pytest

from crossclear._cli import main


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--nodes", "0"], "--nodes 0: expected 1..16"),
        (["--rate", "0"], "--rate must be in (0, 1000]"),
        (["--burst", "0"], "--burst in [1, 100000]"),
        (["--byzantine", "2"], "--byzantine must be in 0..1 (f < n/3)"),
    ],
)
def test_bad_bench_arguments_fail_with_one_line(arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "attest", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
