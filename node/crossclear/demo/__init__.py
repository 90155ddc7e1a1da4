"""`crossclear demo`: the whole story, played against a running devnet."""

from crossclear.demo.story import Story, play

__all__ = ["Story", "play"]
