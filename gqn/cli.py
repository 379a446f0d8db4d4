"""The `gqn` command line: parse and validate arguments, then call the library (no work happens here).

Only this module talks to the terminal. The library hands back what a command did as return values
(summaries: ``RenderSummary``, ``SplitSummary``, ``ExportSummary``, metrics), which are printed here, and
reports what happens along the way through the standard ``logging`` module, each module on its logger
``logging.getLogger(__name__)`` under ``gqn``: INFO for a note during a run (`gqn train`'s held-out test
lines), WARNING for a warning (a record skipped by --skip-corrupt, a file system without locks, orbit GIFs
without the true scene). ``cli`` sends them to the terminal (``_report_to_terminal``): notes to stdout as
they are, warnings to stderr as ``warning: MESSAGE``, both through ``tqdm.write`` so that they never tear a
progress bar. Progress bars are the library's own tqdm bars, shown unless the caller passes ``progress=False``
(--no-progress). Library code used without this CLI prints nothing but Python's default for unhandled
warnings (the bare message on stderr).

Start-up is kept light (`import gqn.cli`: ~30 ms, half of it click; tests/test_cli_startup.py): the family
registry (numpy and every family module), the image encodings (numpy, libdeflate, simplejpeg) and everything
a command runs are imported when a command or a help page needs them (``_FamilyCommands``, ``_LazyChoice``).
"""
from __future__ import annotations

import errno
import functools
import os
import re
import sys
from pathlib import Path

import click

from gqn import __version__
from gqn.errors import GqnError
from gqn.interrupt import Interrupted, exit_status, stop_on_sigterm
from gqn.paramtypes import MinMax, Part

_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


class Count(click.ParamType):
    """A count of at least ``minimum`` (default 1) that accepts suffixes: 500, 500k, 2M, 1.5m."""

    name = "count"

    def __init__(self, minimum: int = 1, auto: bool = False):
        self.minimum, self.auto = minimum, auto    # auto: also accept the word "auto" (returned as is)

    def convert(self, value, param, ctx):
        if self.auto and str(value).strip().lower() == "auto":
            return "auto"
        if isinstance(value, int):
            n = value
        else:
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(value))
            if not m:
                self.fail(f"{value!r} is not a count (examples: 500, 500k, 2M)", param, ctx)
            n = float(m.group(1)) * _SUFFIXES[m.group(2).lower()]
            if n != int(n):
                self.fail(f"{value!r} is not a whole number", param, ctx)
            n = int(n)
        if n < self.minimum:
            self.fail(f"must be at least {self.minimum}, got {value}", param, ctx)
        return n


class Duration(click.ParamType):
    """A wall-clock duration in seconds: ``30m``, ``2h``, ``1h30m``, ``45s``, ``23:50:00`` (h:m:s), ``50:00``
    (m:s) or ``1-12:00:00`` (days-h:m:s, as SLURM writes them); a bare number is minutes, as in SLURM."""

    name = "duration"
    _UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        seconds = self._clock(text) if ":" in text or "-" in text else self._units(text)
        if seconds is None or seconds <= 0:
            self.fail(f"{value!r} is not a duration (examples: 30m, 2h, 1h30m, 23:50:00)", param, ctx)
        return seconds

    def _units(self, text):
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text) * 60
        parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        return sum(float(n) * self._UNITS[u] for n, u in parts)

    @staticmethod
    def _clock(text):
        m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
        if not m:
            return None
        days, *fields = m.groups()
        fields = [int(f) for f in fields if f is not None]
        if not days and len(fields) == 2:        # m:s
            fields = [0, *fields]
        fields += [0] * (3 - len(fields))        # days-h, days-h:m
        hours, minutes, seconds = fields
        return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def _check_size(ctx, param, value):
    if value is not None and (value < 8 or value % 4):
        raise click.BadParameter(f"{value}: image size must be a multiple of 4 and at least 8")
    return value


def _nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its parents that exists (as anything: a folder, a file)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor)


def _probe_write(directory: Path) -> str | None:
    """None if a file can be created in ``directory`` (tried with an unnamed temporary file, which leaves
    nothing behind: permission bits alone do not tell, e.g. for root or a read-only mount), else why not."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as e:
        return e.strerror or str(e)


def check_output_dir(path, option: str) -> None:
    """Refuse, before any work starts, an output directory that cannot be created or written; the one-line
    error names ``option`` and ``path``. Missing folders are fine: the command creates them."""
    if path is None:
        return
    target = Path(path).absolute()
    existing = _nearest_existing(target)
    if existing == target:
        if not target.is_dir():
            raise GqnError(f"{option} {path}: is a file, not a directory")
        why = _probe_write(target)
        if why:
            raise GqnError(f"{option} {path}: output directory is not writable ({why})")
        return
    if not existing.is_dir():
        raise GqnError(f"{option} {path}: cannot create output directory: {existing} is a file, not a directory")
    why = _probe_write(existing)
    if why:
        raise GqnError(f"{option} {path}: cannot create output directory in {existing} ({why})")


def check_output_file(path, option: str) -> None:
    """Refuse, before any work starts, an output file that cannot be written: its folder is missing, is a
    file or is not writable, or the path is a directory. The one-line error names ``option`` and ``path``."""
    if path is None:
        return
    target = Path(path).absolute()
    if target.is_dir():
        raise GqnError(f"{option} {path}: is a directory, not a file")
    folder = target.parent
    existing = _nearest_existing(folder)
    if existing != folder:
        if existing.is_dir():
            raise GqnError(f"{option} {path}: cannot write the file: folder {folder} does not exist")
        raise GqnError(f"{option} {path}: cannot write the file: {existing} is a file, not a directory")
    if not folder.is_dir():
        raise GqnError(f"{option} {path}: cannot write the file: {folder} is a file, not a directory")
    why = _probe_write(folder)
    if why is None and target.exists() and not os.access(target, os.W_OK):
        why = os.strerror(errno.EACCES)
    if why:
        raise GqnError(f"{option} {path}: cannot write the file ({why})")


def render_options(default_views: int):
    """Options shared by every `gqn render FAMILY` command."""
    from gqn.encodings import COMPRESSIONS, DEFAULT_COMPRESSION

    def decorate(f):
        options = [
            click.option("--scenes", type=Count(), default="1000", show_default=True,
                         help="Number of scenes (accepts 500k, 2M)."),
            click.option("--views", type=click.IntRange(1, 1000), default=default_views, show_default=True,
                         help="Camera views per scene."),
            click.option("--size", type=int, default=64, show_default=True, callback=_check_size,
                         help="Image width and height in pixels."),
            click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
                         help="Dataset seed; scene i depends only on (family, parameters, seed, i)."),
            click.option("--out", type=click.Path(file_okay=False), required=True,
                         help="Output directory for the shards (resumed if it already holds some)."),
            click.option("--scenes-per-shard", type=click.IntRange(1), default=2000, show_default=True),
            click.option("--workers", type=click.IntRange(1), default=None,
                         help="Render processes, each with its own GL context [default: all cores]."),
            click.option("--shard", "part", type=Part(), default=None,
                         help="Render only part K of N (0-based), e.g. for cluster job arrays. Under "
                              "mpiexec the MPI rank and size are used."),
            click.option("--compression", type=click.Choice(COMPRESSIONS), default=DEFAULT_COMPRESSION,
                         show_default=True, help="HDF5 compression of the images."),
            click.option("--anti-aliasing/--no-anti-aliasing", default=True, show_default=True,
                         help="4x multisample anti-aliasing."),
            click.option("--progress/--no-progress", default=True, help="Show a progress bar."),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


class _LazyChoice(click.Choice):
    """A click.Choice whose choices come from ``load()`` the first time they are needed (a value to check, a
    help page), not when the CLI loads."""

    def __init__(self, load, case_sensitive: bool = True):
        self._load = load
        self._choices = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple:
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices


def _family_names() -> list[str]:
    from gqn.renderer.families import families

    return sorted(families())


def _encodings(name: str):
    """A constant of ``gqn.encodings`` (imported when first needed: it loads numpy and the codecs)."""
    import gqn.encodings

    return getattr(gqn.encodings, name)


_terminal = None  # the logging handler of ``_report_to_terminal``, once made


def _report_to_terminal() -> None:
    """Print the library's log records (see the module docstring) from now on; once per process."""
    global _terminal
    if _terminal is not None:
        return
    import logging

    class Terminal(logging.Handler):
        def emit(self, record):
            from tqdm import tqdm

            try:
                message = record.getMessage()
                if record.levelno >= logging.WARNING:
                    tqdm.write(f"warning: {message}", file=sys.stderr)
                else:
                    tqdm.write(message, file=sys.stdout)  # looked up now: the streams may be replaced
            except Exception:
                self.handleError(record)

    _terminal = Terminal()
    logger = logging.getLogger("gqn")
    logger.addHandler(_terminal)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed here, not again by a handler of the root logger


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gqn-toolkit")
def cli():
    """gqn-toolkit: multi-view scene datasets and a Generative Query Network that trains on them."""
    _report_to_terminal()


class _FamilyCommands(click.Group):
    """`gqn render`: one command per registered scene family (``gqn.renderer.families``), made the first time
    the group's ``commands`` are looked at rather than when the CLI loads: reading the registry imports numpy
    and every family module, which `gqn --help` and the other commands do without."""

    def __init__(self, *args, **kwargs):
        self._made = False
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> dict:
        if not self._made:
            self._made = True
            from gqn.renderer.families import families

            for family in families().values():
                _render_command(self, family)
        return self._commands

    @commands.setter
    def commands(self, value: dict) -> None:
        self._commands = value


@cli.group(cls=_FamilyCommands)
def render():
    """Render a multi-view scene dataset into HDF5 shards."""


def _run_render(family: str, family_params: dict, **opts):
    from gqn.renderer.job import render_dataset

    check_output_dir(opts["out"], "--out")
    summary = render_dataset(family, family_params, **opts)
    if summary.reports:
        click.echo(str(summary), err=True)


# ---- one `gqn render FAMILY` command per registered scene family (gqn.renderer.families) ----

def _family_option(param):
    """The `gqn render FAMILY` option of a family parameter (a ``families.Param``): ``--NAME VALUE``, or
    ``--NAME/--no-NAME`` for a flag."""
    flag = "--" + param.name.replace("_", "-")
    if param.is_flag:
        return click.option(f"{flag}/--no-{flag[2:]}", param.name, default=param.default, show_default=True,
                            help=param.help)
    return click.option(flag, param.name, type=param.type, default=param.default, show_default=True,
                        help=param.help)


def _render_command(group: click.Group, family):
    """`gqn render NAME` for a family class, added to ``group``: its declared parameters, then the options of
    every family."""
    spec = family.spec

    def command(**opts):
        _run_render(spec.name, {p.name: p.store(opts.pop(p.name)) for p in spec.params}, **opts)

    command = render_options(default_views=spec.views)(command)
    for param in reversed(spec.params):
        command = _family_option(param)(command)
    command = group.command(spec.name, help=spec.help)(command)
    names = [p.name for p in command.params]
    if len(set(names)) != len(names):
        raise ValueError(f"gqn render {spec.name}: a family parameter has the name of a common option: {names}")
    return command


# ---- DeepMind datasets: convert / export (gqn.converters) ----

# imports kept in this section: clean merges
from gqn.converters.datasets import CONVERT_COMPRESSION, CONVERT_IMAGES, DATASETS  # noqa: E402


@cli.group()
def convert():
    """Convert datasets from other formats into shards."""


@convert.command("tfrecord")
@click.argument("src", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=None,
              help="Which DeepMind dataset [default: the one named in SRC's path].")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes converting whole shards (reading, checking, with --images raw decoding, "
                   "writing) [default: all cores].")
@click.option("--scenes-per-shard", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--images", type=_LazyChoice(lambda: _encodings("IMAGE_ENCODINGS")), default=CONVERT_IMAGES,
              show_default=True,
              help="jpeg: keep each frame's JPEG file as it came (lossless, ~8x smaller than raw, no decoding; "
                   "shard format version 2, decoded by gqn's readers). raw: decoded uint8 pixels (format "
                   "version 1, readable by chainer-gqn).")
@click.option("--compression", type=_LazyChoice(lambda: _encodings("COMPRESSIONS")), default=CONVERT_COMPRESSION,
              show_default=True, help="HDF5 compression of --images raw (gzip-1: ~3.7x smaller, ~2.7x slower); "
                                      "refused with --images jpeg.")
@click.option("--skip-corrupt", is_flag=True,
              help="Log and skip corrupt records instead of stopping at the first one.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def convert_tfrecord(src, out, **opts):
    """Convert DeepMind GQN TFRecords (no TensorFlow needed) into shards under OUT/train and OUT/test.

    SRC is a dataset directory holding train/ and test/, a directory of .tfrecord files, or .tfrecord
    files (plain or GZIP). Scenes keep the order of files sorted by index and of records within a file;
    re-running the same command resumes an interrupted conversion.

    Example: gqn convert tfrecord gqn-dataset/shepard_metzler_5_parts data/sm5
    """
    from gqn.converters.convert import convert_tfrecord as run

    check_output_dir(out, "OUT")
    for summary in run(src, out, **opts):
        click.echo(summary)
        for warning in summary.warnings:
            click.echo(f"warning: {warning}", err=True)


@cli.group()
def export():
    """Export shards to other formats."""


@export.command("tfrecord")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--records-per-file", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality of the frames of raw shards; jpeg shards' frames are copied as stored "
                   "(no re-encoding), so it does not apply to them.")
@click.option("--gzip", "compress", is_flag=True, help="Write GZIP-compressed TFRecord files.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def export_tfrecord(data, out, **opts):
    """Export shards (DATA, or DATA/train and DATA/test) as DeepMind-format TFRecords {i}-of-{n}.tfrecord.

    Example: gqn export tfrecord data/sm5 export/shepard_metzler_5_parts
    """
    from gqn.converters.export import export_tfrecord as run

    check_output_dir(out, "OUT")
    for summary in run(data, out, **opts):
        click.echo(summary)


@cli.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--preview", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG contact sheet: one row per scene, all its views.")
@click.option("--preview-scenes", type=click.IntRange(1, 64), default=6, show_default=True)
def info(data, preview, preview_scenes):
    """Describe a shard dataset (family, scenes, views, size, parameters, disk size).

    Example: gqn info data/sm5/train --preview sm5.png
    """
    from gqn.info import describe, write_preview

    check_output_file(preview, "--preview")
    click.echo(describe(data))
    if preview:
        write_preview(data, preview, preview_scenes)
        click.echo(f"preview written to {preview}")


# ---- the model: train / evaluate (gqn.runs, training the network of gqn.model) ----


_gpu_option = click.option("--gpu", type=click.IntRange(0), default=None,
                           help="CUDA device id (needs CuPy: the gpu extra) [default: CPU].")


class KeyValue(click.ParamType):
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (numbers, true/false), else kept as text."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        import json

        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE (e.g. parts=7)", param, ctx)
        try:
            return key.strip().replace("-", "_"), json.loads(text)
        except ValueError:
            return key.strip().replace("-", "_"), text


def _render_source(family, size, views, seed, params, workers, save, anti_aliasing):
    """The RenderSource of `gqn train --render`, or None."""
    if family is None:
        return None
    from gqn.renderer.families import family_spec
    from gqn.renderer.stream import ShardOutput, render_config
    from gqn.runs.sources import RenderSource

    spec = family_spec(family)
    params = spec.parse(dict(params), "--render-param")  # checked and stored as `gqn render FAMILY` does
    config = render_config(family, params, views or spec.views, size, seed, anti_aliasing,
                           size_option="--render-size", views_option="--render-views")
    return RenderSource(config, workers, ShardOutput(save, option="--save-rendered") if save else None)


@cli.command()
@click.argument("data", type=click.Path(file_okay=False), required=False)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory: snapshot.npz, config.json, log.jsonl.")
@click.option("--render", "render_family", type=_LazyChoice(_family_names), default=None,
              help="Train on freshly rendered scenes of this family instead of shards in DATA.")
@click.option("--render-size", type=int, default=64, show_default=True, callback=_check_size,
              help="Image size of rendered scenes.")
@click.option("--render-views", type=click.IntRange(2), default=None,
              help="Views per rendered scene [default: the family's].")
@click.option("--render-seed", type=click.IntRange(0), default=0, show_default=True,
              help="Dataset seed of the rendered scenes.")
@click.option("--render-param", "render_params", type=KeyValue(), multiple=True,
              help="A family parameter, e.g. parts=7 or camera=free (repeatable).")
@click.option("--render-workers", type=click.IntRange(1), default=None,
              help="Render processes, each with its own GL context [default: all cores].")
@click.option("--render-anti-aliasing/--no-render-anti-aliasing", default=True, show_default=True)
@click.option("--save-rendered", type=click.Path(file_okay=False), default=None,
              help="Also write the rendered scenes as shards into this directory.")
@click.option("--communicator", type=click.Choice(["naive", "flat", "hierarchical", "two_dimensional",
                                                     "pure_nccl", "non_cuda_aware"]), default=None,
              help="Data-parallel training with ChainerMN under mpiexec (naive/flat on CPU, pure_nccl on "
                   "GPUs).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its snapshot.")
@click.option("--iterations", type=Count(), default="2M", show_default=True,
              help="Train until this many iterations in total (accepts 500k, 2M).")
@click.option("--time-limit", type=Duration(), default=None,
              help="Stop after this wall-clock time (30m, 2h, 23:50:00): finish the step, snapshot, exit 0; "
                   "continue with --resume (for job schedulers' wall-time limits).")
@click.option("--batch-size", type=click.IntRange(1), default=36, show_default=True)
@click.option("--context", type=MinMax(), default=None,
              help="Context views per batch, drawn per batch [default: 1-(views-1)].")
@click.option("--steps", type=click.IntRange(1), default=12, show_default=True, help="Generation steps L.")
@click.option("--hidden", type=click.IntRange(1), default=128, show_default=True, help="Core channels h.")
@click.option("--latent", type=click.IntRange(1), default=3, show_default=True, help="Latent channels z.")
@click.option("--canvas", type=click.IntRange(1), default=128, show_default=True, help="Canvas channels u.")
@click.option("--r-channels", type=click.IntRange(2), default=256, show_default=True,
              help="Representation channels r.")
@click.option("--representation", type=click.Choice(["tower", "pool"]), default="tower", show_default=True)
@click.option("--shared-cores/--no-shared-cores", default=True, show_default=True,
              help="One core for all steps, or one per step (12x the core parameters).")
@click.option("--kernel", type=click.IntRange(1), default=5, show_default=True,
              help="Kernel size of the cores' convolutions (odd; the paper's 5).")
@click.option("--frame", type=click.Choice(["world", "query"]), default="world", show_default=True,
              help="Viewpoints as given (the paper), or turned about the vertical (y) axis so that the query "
                   "camera's yaw is 0: the turn symmetry built in, several times faster learning on the "
                   "scenes gqn render writes (docs/training.md). Needs y up, as gqn render's viewpoints have.")
@click.option("--lr-start", type=click.FloatRange(0, min_open=True), default=5e-4, show_default=True)
@click.option("--lr-end", type=click.FloatRange(0, min_open=True), default=5e-5, show_default=True)
@click.option("--lr-steps", type=Count(auto=True), default="1.6M", show_default=True,
              help="Iterations over which the learning rate anneals linearly; auto (with --time-limit): those "
                   "the time limit allows, estimated from the speed of its first tenth.")
@click.option("--lr-warmup", type=Count(minimum=0), default="0", show_default=True,
              help="Iterations over which the learning rate rises linearly from 0 to its schedule (keeps the "
                   "first Adam steps from saturating the cores' gates; 0: no warm-up).")
@click.option("--sigma-start", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
              help="Pixel standard deviation of the likelihood at iteration 0.")
@click.option("--sigma-end", type=click.FloatRange(0, min_open=True), default=0.7, show_default=True)
@click.option("--sigma-steps", type=Count(), default="200k", show_default=True)
@click.option("--objective", type=click.Choice(["paper", "fixed-sigma", "calibrated", "geco"]),
              default="paper", show_default=True,
              help="The training loss: paper (sigma annealed --sigma-start -> --sigma-end), fixed-sigma "
                   "(--sigma), calibrated (sigma^2 = the batch's MSE) or geco (least KL with MSE <= "
                   "--geco-kappa). The default predicted unseen views best in bench/quality.py (docs/"
                   "training.md).")
@click.option("--sigma", type=click.FloatRange(0, min_open=True), default=0.25, show_default=True,
              help="fixed-sigma: the pixel sigma; geco: the sigma its multiplier starts from.")
@click.option("--geco-kappa", type=click.FloatRange(0, min_open=True), default=0.005, show_default=True,
              help="geco: the target mean squared error of the reconstruction (images in [-0.5, 0.5)).")
@click.option("--geco-rate", type=click.FloatRange(0, min_open=True), default=0.01, show_default=True,
              help="geco: how fast the multiplier follows the constraint.")
@click.option("--kl-warmup", type=Count(minimum=0), default="0", show_default=True,
              help="Iterations over which the KL term's weight in the loss rises from 0 to 1 (any objective; "
                   "0: full weight throughout).")
@click.option("--adam-beta1", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True)
@click.option("--adam-beta2", type=click.FloatRange(0, 1, max_open=True), default=0.999, show_default=True)
@click.option("--adam-eps", type=click.FloatRange(0, min_open=True), default=1e-8, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seeds the initial weights, the data order and the latent noise.")
@_gpu_option
@click.option("--test", type=click.Path(file_okay=False), default=None,
              help="Held-out shard directory, evaluated every --test-every iterations.")
@click.option("--test-every", type=Count(), default="1000", show_default=True)
@click.option("--test-scenes", type=Count(), default="256", show_default=True)
@click.option("--snapshot-every", type=Count(), default="1000", show_default=True)
@click.option("--log-every", type=Count(), default="10", show_default=True)
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True,
              help="Data loader processes (0: load in the training process).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.pass_context
def train(ctx, data, out, resume, test, context, iterations, time_limit, snapshot_every, log_every, test_every,
          test_scenes, gpu, workers, progress, render_family, render_size, render_views, render_seed,
          render_params, render_workers, render_anti_aliasing, save_rendered, communicator, **hyper):
    """Train a GQN on the shards in DATA, or on scenes rendered on the fly (--render FAMILY).

    Examples:

      gqn train data/sm5/train --test data/sm5/test --out runs/sm5

      gqn train --render shepard-matzler --render-param parts=7 --save-rendered data/sm7 --out runs/sm7

      mpiexec -n 4 gqn train data/sm5/train --communicator pure_nccl --gpu 0 --out runs/sm5
    """
    from click.core import ParameterSource

    from gqn.runs.run import RunOptions
    from gqn.runs.train import run_training

    explicit = {name for name in [*hyper, "context"] if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    if "context" in explicit:
        explicit |= {"context_min", "context_max"}
    hyper["context_min"], hyper["context_max"] = context or (1, None)
    fit_lr_steps = hyper["lr_steps"] == "auto"
    if fit_lr_steps:
        if time_limit is None:
            raise click.UsageError("--lr-steps auto fits the annealing to --time-limit: give one")
        hyper["lr_steps"] = iterations    # until the estimate: annealing over --iterations
    if (data is None) == (render_family is None):
        raise click.UsageError("give either DATA (a shard directory) or --render FAMILY")
    check_output_dir(out, "--out")
    check_output_dir(save_rendered, "--save-rendered")
    source = _render_source(render_family, render_size, render_views, render_seed, render_params,
                            render_workers, save_rendered, render_anti_aliasing)
    options = RunOptions(iterations, snapshot_every, log_every, test_every, test_scenes, gpu, workers, progress,
                         communicator, time_limit, fit_lr_steps)
    run_training(source or data, out, hyper, explicit, options, resume=resume, test=test)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Held-out shard directory.")
@click.option("--scenes", type=Count(), default="256", show_default=True,
              help="Evaluate the first N scenes of --data.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default: RUN/eval].")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--context", type=MinMax(), default=None, help="Context views [default: the run's].")
@click.option("--samples", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Sampled predictions per grid row.")
@click.option("--rows", type=click.IntRange(1, 64), default=8, show_default=True, help="Scenes in the grid.")
@click.option("--gifs", type=click.IntRange(0), default=4, show_default=True, help="Scenes with an orbit GIF.")
@click.option("--frames", type=click.IntRange(2, 720), default=36, show_default=True, help="Frames per GIF.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@_gpu_option
def evaluate(run, data, **opts):
    """Metrics, a prediction grid and orbit GIFs of the training run RUN on held-out scenes.

    Example: gqn evaluate runs/sm5 --data data/sm5/test --out runs/sm5/eval
    """
    from gqn.runs.evaluate import format_table, run_evaluation

    check_output_dir(opts["out"], "--out")
    metrics = run_evaluation(run, data, **opts)
    click.echo(format_table(metrics))
    click.echo(f"metrics, predictions.png and orbit GIFs written to {opts['out'] or run + '/eval'}")


def _one_line_errors(f):
    @functools.wraps(f)
    def wrapper():
        stop_on_sigterm()
        try:
            code = f(standalone_mode=False)
            sys.exit(code if isinstance(code, int) else 0)
        except (click.exceptions.Abort, KeyboardInterrupt) as e:  # click turns Ctrl-C into Abort
            cause = e.__cause__ if isinstance(e, click.exceptions.Abort) else e
            if not isinstance(cause, KeyboardInterrupt):  # an Abort of click's own
                click.echo("Aborted.", err=True)
                sys.exit(1)
            # a loop that stopped cleanly (training) says what it kept
            click.echo(str(cause) if isinstance(cause, Interrupted) else
                       "Interrupted; complete shards are kept: re-run the same command to resume.", err=True)
            sys.exit(exit_status())
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except GqnError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except OSError as e:  # a failure no writer reported itself (a full disk while writing a log)
            where = f": {e.filename}" if e.filename else ""
            click.echo(f"Error: {e.strerror or e}{where}", err=True)
            sys.exit(1)

    return wrapper


main = _one_line_errors(cli)
