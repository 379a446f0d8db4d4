"""Click parameter types shared by the command line (``gqn.cli``) and the scene families' parameter
declarations (``gqn.renderer.families.base.Param``), which must not import the CLI."""
from __future__ import annotations

import re

import click


class IntPair(click.ParamType):
    """Two integers written as ``pattern`` (a regex with two groups; a missing second repeats the first),
    accepted when ``valid(a, b)``."""

    pattern, form, rule = "", "", ""

    def valid(self, a: int, b: int) -> bool:
        raise NotImplementedError

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(self.pattern, str(value))
        if not m:
            self.fail(f"{value!r} is not {self.form}", param, ctx)
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if not self.valid(a, b):
            self.fail(f"{value}: need {self.rule}", param, ctx)
        return a, b


class Part(IntPair):
    """``K/N``: the K-th (0-based) of N equal parts of a job."""

    name = "K/N"
    pattern, form, rule = r"\s*(\d+)\s*/\s*(\d+)\s*", "of the form K/N (e.g. 0/4)", "0 <= K < N"

    def valid(self, k, n):
        return 0 <= k < n


class MinMax(IntPair):
    """An integer range ``MIN-MAX`` (e.g. 1-14) or a single number ``K`` (= K-K), with 1 <= MIN <= MAX."""

    name = "MIN-MAX"
    pattern, form, rule = r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", "MIN-MAX or K (examples: 1-14, 3)", "1 <= MIN <= MAX"

    def valid(self, low, high):
        return 1 <= low <= high
