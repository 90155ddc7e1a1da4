"""Errors shared by every concern."""


class UsageError(Exception):
    """A problem with what the user gave us (a file, a flag, a config key).

    The command line prints it as one line and exits with status 2; the message must name
    the offending input and say what is wrong with it.
    """
