"""Embed a corpus with kiln on a Ray cluster, with Ray Data.

Command line (``python -m kiln.embed_corpus --help``)::

    python -m kiln.embed_corpus --model DIR --input PATH_OR_GLOB --output DIR \\
        [--num-actors N] [--batch-size B] [--address RAY_ADDRESS] \\
        [--id-column C] [--text-column C]

or from Python: :func:`embed_corpus`, which returns the manifest.

Inputs, by file name:

- ``*.jsonl`` / ``*.ndjson``: one JSON object per line, the id in ``--id-column`` (default
  ``id``), the text in ``--text-column`` (default ``text``);
- ``*.parquet``: the same two columns;
- anything else: text, one text per line (as ``kiln embed --input-file`` reads it), with the id
  ``<file name>:<line number>`` (line numbers from 1).

The inputs are cut into blocks of ``--block-rows`` rows (a block never spans two files). Ray
Data runs the blocks through a pool of ``--num-actors`` actors, each of which loads the model
once (:class:`kiln.TextEncoder`) and embeds ``--batch-size`` texts per forward pass; the
embedded blocks are written by Ray Data (a :class:`ray.data.Datasink`) as one Parquet file per
block, ``part-<block>.parquet``, with the columns ``id`` (string) and ``embedding`` (list of
float32). Each file is written under a temporary name and renamed when complete, so a file that
exists is whole.

The output directory also holds ``plan.json`` (the inputs and settings, written first) and, at
the end, ``manifest.json``: every block with its source, first row and row count, the total, and
which blocks this run embedded and which it found done. Every input row is in exactly one part
file, once.

Failures: Ray restarts an actor whose process dies and retries its block (the rewrite replaces
the file with the same rows). A rerun with the same inputs and ``--output`` (after a crash of
the driver, or of the whole cluster) skips every block whose part file is complete and embeds
only the rest; a rerun with other inputs or settings is refused rather than mixed in.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import ray
    import ray.data
    from ray.data.block import BlockAccessor
    from ray.data.datasource import Datasink
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kiln.embed_corpus needs Ray Data and pyarrow: pip install 'ray[data]' pyarrow "
        f"({error})"
    ) from error

__all__ = ["embed_corpus", "main", "DEFAULT_BLOCK_ROWS"]

#: Rows per block unless told otherwise: large enough that the per-block overhead (a Ray task,
#: a file) is small next to embedding it, small enough that a block's output (rows x dim x 4
#: bytes: 6 MiB for 384 dimensions) stays far below Ray Data's block size limit, and that a
#: block lost to a crash is little work to redo.
DEFAULT_BLOCK_ROWS = 4096

FORMAT = 1
PLAN = "plan.json"
MANIFEST = "manifest.json"
#: Slows every block by this many seconds (float): for tests of fault tolerance, which need a
#: run that lasts long enough to be interrupted. Read on the driver, handed to the actors.
DELAY_ENV = "KILN_EMBED_CORPUS_BLOCK_DELAY"

TEXT, JSONL, PARQUET = "text", "jsonl", "parquet"
OUTPUT_SCHEMA = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32()))])


class CorpusError(ValueError):
    """Inputs or an output directory that cannot be embedded as asked (the message says why)."""


@dataclass(frozen=True)
class Source:
    """One input file."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    rows: int


@dataclass(frozen=True)
class Block:
    """Rows ``[start_row, start_row + rows)`` of one source: one task, one output file."""

    name: str
    source: int
    start_row: int
    rows: int
    #: Byte range of the rows in a text or JSON-lines file (-1 for Parquet).
    byte_start: int
    byte_end: int

    @property
    def file_name(self) -> str:
        return f"part-{self.name}.parquet"


# --- planning (on the driver) --------------------------------------------------------------


def _kind(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return JSONL
    if lower.endswith(".parquet"):
        return PARQUET
    return TEXT


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """The input files: each pattern is a file, a directory (its files, not hidden, not
    recursing) or a glob (``**`` recurses); sorted, without duplicates."""
    found: set[str] = set()
    for pattern in patterns:
        if os.path.isdir(pattern):
            matches = [
                os.path.join(pattern, name)
                for name in os.listdir(pattern)
                if not name.startswith(".")
            ]
        elif os.path.exists(pattern):
            matches = [pattern]
        else:
            matches = glob.glob(pattern, recursive=True)
        files = [os.path.abspath(m) for m in matches if os.path.isfile(m)]
        if not files:
            raise CorpusError(f"--input {pattern}: no such file, or no file matches")
        found.update(files)
    return sorted(found)


def _line_blocks(
    path: str, size: int, block_rows: int
) -> tuple[int, list[tuple[int, int, int, int]]]:
    """Lines of a text file as ``kiln embed`` reads them (the text after the last newline is a
    line when not empty; ``\\r\\n`` ends a line too) and its blocks ``(start_row, rows,
    byte_start, byte_end)``, found in one pass that records only the block boundaries."""
    starts = [0]  # byte offset of the first line of each block
    newlines = 0  # newlines before the current chunk
    offset = 0  # file offset of the current chunk
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            after = newlines + chunk.count(b"\n")
            pos, seen = 0, newlines  # seen: newlines before chunk[pos]
            # Block k starts after newline number k * block_rows.
            while after >= len(starts) * block_rows:
                target = len(starts) * block_rows
                while seen < target:
                    pos = chunk.index(b"\n", pos) + 1
                    seen += 1
                starts.append(offset + pos)
            newlines = after
            offset += len(chunk)
    total_lines = newlines + (1 if size > 0 and not _ends_with_newline(path, size) else 0)
    blocks = []
    for k, start in enumerate(starts):
        first = k * block_rows
        if first >= total_lines:
            break
        rows = min(block_rows, total_lines - first)
        end = starts[k + 1] if k + 1 < len(starts) else size
        blocks.append((first, rows, start, end))
    return total_lines, blocks


def _ends_with_newline(path: str, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def _check_columns(path: str, names: Iterable[str], id_column: str, text_column: str) -> None:
    names = list(names)
    missing = [c for c in (id_column, text_column) if c not in names]
    if missing:
        raise CorpusError(
            f"{path}: no column {', '.join(map(repr, missing))} (it has {', '.join(map(repr, names))}; "
            "choose them with --id-column / --text-column)"
        )


def _first_json_object(path: str, id_column: str, text_column: str) -> None:
    with open(path, "rb") as f:
        line = f.readline()
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except ValueError as error:
        raise CorpusError(f"{path} line 1: not JSON ({error})") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{path} line 1: expected a JSON object, got {type(record).__name__}")
    _check_columns(path, record.keys(), id_column, text_column)


def plan(
    files: list[str], block_rows: int, id_column: str, text_column: str
) -> tuple[list[Source], list[Block]]:
    """Sources and their blocks: rows ``[k * block_rows, (k + 1) * block_rows)`` of each file."""
    if block_rows < 1:
        raise CorpusError(f"--block-rows must be at least 1, not {block_rows}")
    sources: list[Source] = []
    blocks: list[Block] = []
    text_names: dict[str, str] = {}
    for index, path in enumerate(files):
        kind = _kind(path)
        stat = os.stat(path)
        if kind == PARQUET:
            metadata = pq.read_metadata(path)
            _check_columns(path, metadata.schema.names, id_column, text_column)
            rows = metadata.num_rows
            spans = [
                (first, min(block_rows, rows - first), -1, -1)
                for first in range(0, rows, block_rows)
            ]
        else:
            if kind == TEXT:
                name = os.path.basename(path)
                if name in text_names:
                    raise CorpusError(
                        f"{text_names[name]} and {path} have the same file name: their ids "
                        f"({name}:<line>) would collide"
                    )
                text_names[name] = path
            else:
                _first_json_object(path, id_column, text_column)
            rows, spans = _line_blocks(path, stat.st_size, block_rows)
        sources.append(Source(path, kind, stat.st_size, stat.st_mtime_ns, rows))
        for k, (first, count, start, end) in enumerate(spans):
            blocks.append(Block(f"{index:05d}-{k:06d}", index, first, count, start, end))
    return sources, blocks


# --- reading and embedding a block (in the actors) -----------------------------------------


def _lines(data: bytes) -> list[bytes]:
    if data.endswith(b"\n"):
        data = data[:-1]
    return [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]


def read_block(
    source: dict[str, Any], block: dict[str, Any], id_column: str, text_column: str
) -> tuple[list[str], list[str]]:
    """The ids and texts of one block."""
    path, kind = source["path"], source["kind"]
    start_row, rows = block["start_row"], block["rows"]
    if kind == PARQUET:
        parquet = pq.ParquetFile(path)
        groups, first_row, offset = [], None, 0
        for g in range(parquet.metadata.num_row_groups):
            n = parquet.metadata.row_group(g).num_rows
            if offset + n > start_row and offset < start_row + rows:
                groups.append(g)
                first_row = offset if first_row is None else first_row
            offset += n
        table = parquet.read_row_groups(groups, columns=[id_column, text_column])
        table = table.slice(start_row - (first_row or 0), rows)
        ids = [None if v is None else str(v) for v in table.column(id_column).to_pylist()]
        texts = table.column(text_column).to_pylist()
        for i, (id_, text) in enumerate(zip(ids, texts)):
            if id_ is None or not isinstance(text, str):
                what = "id" if id_ is None else f"text ({type(text).__name__})"
                raise ValueError(f"{path} row {start_row + i}: missing or non-string {what}")
        return ids, texts
    with open(path, "rb") as f:
        f.seek(block["byte_start"])
        data = f.read(block["byte_end"] - block["byte_start"])
    lines = _lines(data)
    if len(lines) != rows:
        raise ValueError(
            f"{path}: expected {rows} lines from line {start_row + 1}, found {len(lines)} "
            "(the file changed since the run was planned)"
        )
    ids, texts = [], []
    name = os.path.basename(path)
    for i, raw in enumerate(lines):
        number = start_row + i + 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} line {number}: invalid UTF-8 ({error})") from None
        if kind == TEXT:
            ids.append(f"{name}:{number}")
            texts.append(line)
            continue
        if not line.strip():
            raise ValueError(f"{path} line {number}: empty (JSON lines holds one object per line)")
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{path} line {number}: not JSON ({error})") from None
        if not isinstance(record, dict) or id_column not in record or text_column not in record:
            raise ValueError(
                f"{path} line {number}: expected an object with {id_column!r} and {text_column!r}"
            )
        text = record[text_column]
        if not isinstance(text, str) or record[id_column] is None:
            raise ValueError(f"{path} line {number}: {text_column!r} must be a string, {id_column!r} set")
        ids.append(str(record[id_column]))
        texts.append(text)
    return ids, texts


def embeddings_column(embeddings) -> pa.Array:
    """A ``list<float32>`` column of a float32 ``[N, dim]`` array (no copy of the values)."""
    n, dim = embeddings.shape
    values = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1))
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


class EmbedBlocks:
    """The Ray Data actor: loads the model once, then embeds one block per call.

    Each call gets block descriptions (one row each) and returns their rows: ``id``,
    ``embedding``, and ``_block`` / ``_rows`` (the block's name and row count, which the
    datasink uses to write one whole file per block).
    """

    def __init__(
        self,
        model: str,
        sources: list[dict[str, Any]],
        id_column: str,
        text_column: str,
        batch_size: int,
        backend: str,
        precision: str,
        threads: int,
        delay: float = 0.0,
    ) -> None:
        # kiln's CPU backends use one rayon thread per core unless told; an actor gets the
        # CPUs it reserved. Set before kiln first computes (its thread pool starts then).
        os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, threads)))
        import kiln

        self.encoder = kiln.TextEncoder(model, backend=backend, precision=precision)
        self.sources = sources
        self.id_column, self.text_column = id_column, text_column
        self.batch_size = batch_size
        self.delay = delay

    def __call__(self, batch: pa.Table) -> pa.Table:
        tables = []
        for block in batch.to_pylist():
            source = self.sources[block["source"]]
            ids, texts = read_block(source, block, self.id_column, self.text_column)
            if self.delay:
                time.sleep(self.delay)
            embeddings = self.encoder.embed(texts, batch_size=self.batch_size)
            n = len(ids)
            tables.append(
                pa.table(
                    {
                        "_block": pa.array([block["name"]] * n, type=pa.string()),
                        "_rows": pa.array([n] * n, type=pa.int64()),
                        "id": pa.array(ids, type=pa.string()),
                        "embedding": embeddings_column(embeddings),
                    }
                )
            )
        return pa.concat_tables(tables)


# --- writing (in Ray Data's write tasks) ----------------------------------------------------


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Writes ``table`` to ``path`` through a temporary file renamed when complete (and synced),
    so that a file at ``path`` is always whole."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class BlockParquetSink(Datasink):
    """Writes each embedded block as ``part-<block>.parquet`` in the output directory."""

    def __init__(self, output: str) -> None:
        self.output = output

    def write(self, blocks: Iterable[Any], ctx: Any) -> list[dict[str, Any]]:
        written = []
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            if table.num_rows == 0:
                continue
            names = table.column("_block")
            for name in pc.unique(names).to_pylist():
                part = table.filter(pc.equal(names, name))
                expected = part.column("_rows")[0].as_py()
                if part.num_rows != expected:
                    # A block's rows arrive together (one actor call makes them); anything else
                    # would write a partial file, so it is refused, never written.
                    raise RuntimeError(
                        f"block {name}: {part.num_rows} of its {expected} rows reached one write task"
                    )
                out = part.select(["id", "embedding"]).cast(OUTPUT_SCHEMA)
                write_parquet_atomic(out, Path(self.output) / f"part-{name}.parquet")
                written.append({"block": name, "rows": part.num_rows})
        return written


# --- the run (on the driver) ----------------------------------------------------------------


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def block_is_complete(path: Path, rows: int) -> bool:
    """Whether ``path`` is a readable part file of ``rows`` rows."""
    try:
        return pq.read_metadata(path).num_rows == rows
    except (OSError, pa.ArrowException):
        return False


def _settings(model: str, sources: list[Source], blocks: list[Block], block_rows: int,
              id_column: str, text_column: str, precision: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": os.path.abspath(model),
        "precision": precision,
        "block_rows": block_rows,
        "id_column": id_column,
        "text_column": text_column,
        "sources": [asdict(s) for s in sources],
        "blocks": len(blocks),
    }


def embed_corpus(
    model: str | os.PathLike[str],
    input: str | os.PathLike[str] | list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    num_actors: int = 1,
    batch_size: int = 32,
    address: str | None = None,
    id_column: str = "id",
    text_column: str = "text",
    block_rows: int = DEFAULT_BLOCK_ROWS,
    backend: str = "auto",
    precision: str = "f32",
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Embeds every row of ``input`` into Parquet files in ``output`` (see the module's
    documentation) and returns the manifest, also written to ``output/manifest.json``.

    Args:
        model: a model directory every Ray node can read (e.g. all-MiniLM-L6-v2).
        input: a file, a directory, a glob, or a list of them.
        output: the output directory (created; a rerun into it resumes).
        num_actors: actors embedding in parallel, each with the model loaded once.
        batch_size: texts per forward pass.
        address: a Ray cluster to run on; ``None`` uses the Ray instance this process is
            connected to, or starts a local one.
        id_column, text_column: columns of JSON-lines and Parquet inputs.
        block_rows: rows per block (per task and output file).
        backend, precision: as :class:`kiln.TextEncoder` takes them, in every actor.
        cpus_per_actor, gpus_per_actor: resources each actor reserves (kiln's CPU backends run
            that many threads).
        progress: show Ray Data's progress bars (rows done, rate, time left).

    Raises:
        FileNotFoundError: ``model`` is not a directory.
        ValueError: bad inputs, or an ``output`` that holds a run over other inputs or
            settings.
        RuntimeError (or Ray's errors): a block could not be embedded; the blocks written so
            far stay, and a rerun continues from them.
    """
    started = time.monotonic()
    model = os.fspath(model)
    if not os.path.isdir(model):
        raise FileNotFoundError(f"--model {model}: no such model directory")
    for name, value in (("num_actors", num_actors), ("batch_size", batch_size)):
        if value < 1:
            raise CorpusError(f"{name} must be at least 1, not {value}")
    patterns = [os.fspath(p) for p in (input if isinstance(input, list) else [input])]
    files = expand_inputs(patterns)
    sources, blocks = plan(files, block_rows, id_column, text_column)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(model, sources, blocks, block_rows, id_column, text_column, precision)
    plan_path = out / PLAN
    if plan_path.exists():
        previous = json.loads(plan_path.read_text())
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise CorpusError(
                f"--output {out} holds a run over other inputs or settings ({', '.join(changed)} "
                "differ, see its plan.json): use another --output, or delete it to start over"
            )
    else:
        _write_json_atomic(plan_path, settings)

    # Temporary files of a crashed run's writers (a file is renamed into place when complete).
    for stale in out.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    done = {b.name for b in blocks if block_is_complete(out / b.file_name, b.rows)}
    pending = [b for b in blocks if b.name not in done]
    total_rows = sum(s.rows for s in sources)
    print(
        f"kiln.embed_corpus: {total_rows} rows in {len(sources)} file(s), {len(blocks)} block(s); "
        f"{len(done)} already complete, {len(pending)} to embed with {num_actors} actor(s)",
        file=sys.stderr,
    )
    if pending:
        _run(
            model, sources, pending, out, num_actors=num_actors, batch_size=batch_size,
            address=address, id_column=id_column, text_column=text_column, backend=backend,
            precision=precision, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor,
            progress=progress,
        )

    missing = [b.name for b in blocks if not block_is_complete(out / b.file_name, b.rows)]
    if missing:
        raise RuntimeError(
            f"{len(missing)} block(s) have no complete output after the run: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; rerun to embed them"
        )
    dim = None
    if blocks:
        first = pq.ParquetFile(out / blocks[0].file_name).read_row_group(0, columns=["embedding"])
        dim = len(first.column("embedding")[0].as_py())
    manifest = {
        **settings,
        "dim": dim,
        "rows": total_rows,
        "blocks": [
            {
                "name": b.name,
                "file": b.file_name,
                "source": sources[b.source].path,
                "start_row": b.start_row,
                "rows": b.rows,
            }
            for b in blocks
        ],
        "embedded_blocks": [b.name for b in pending],
        "skipped_blocks": sorted(done),
        "seconds": time.monotonic() - started,
    }
    _write_json_atomic(out / MANIFEST, manifest)
    print(
        f"kiln.embed_corpus: wrote {total_rows} embeddings ({len(pending)} block(s) embedded, "
        f"{len(done)} skipped) in {manifest['seconds']:.1f} s: {out / MANIFEST}",
        file=sys.stderr,
    )
    return manifest


def _run(
    model: str,
    sources: list[Source],
    pending: list[Block],
    out: Path,
    *,
    num_actors: int,
    batch_size: int,
    address: str | None,
    id_column: str,
    text_column: str,
    backend: str,
    precision: str,
    cpus_per_actor: float,
    gpus_per_actor: float,
    progress: bool,
) -> None:
    """Embeds the ``pending`` blocks on Ray Data."""
    started_ray = False
    if not ray.is_initialized():
        ray.init(address=address)
        started_ray = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        available = ray.cluster_resources().get("CPU", 0)
        if available < num_actors * cpus_per_actor:
            print(
                f"kiln.embed_corpus: warning: {num_actors} actor(s) x {cpus_per_actor} CPU "
                f"need more than the cluster's {available:g} CPUs; Ray waits for them",
                file=sys.stderr,
            )
        descriptions = [asdict(b) for b in pending]
        remote_args: dict[str, Any] = {"num_cpus": cpus_per_actor}
        if gpus_per_actor:
            remote_args["num_gpus"] = gpus_per_actor
        dataset = ray.data.from_items(descriptions, override_num_blocks=len(descriptions))
        dataset = dataset.map_batches(
            EmbedBlocks,
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            fn_constructor_kwargs={
                "model": os.path.abspath(model),
                "sources": [asdict(s) for s in sources],
                "id_column": id_column,
                "text_column": text_column,
                "batch_size": batch_size,
                "backend": backend,
                "precision": precision,
                "threads": max(1, round(cpus_per_actor)),
                "delay": float(os.environ.get(DELAY_ENV) or 0),
            },
            **remote_args,
        )
        # Write tasks reserve no CPU: the actors hold the CPUs they reserved for the whole run,
        # and a write task waiting for one would keep every embedded block in memory until the
        # end (and lose it all to a crash) instead of writing each as it is done.
        dataset.write_datasink(
            BlockParquetSink(str(out.resolve())), ray_remote_args={"num_cpus": 0}
        )
    finally:
        if started_ray:
            ray.shutdown()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kiln.embed_corpus",
        description="Embed a corpus with a kiln text model on a Ray cluster (Ray Data): one "
        "Parquet file (id, embedding) per input block, and manifest.json. A rerun into the same "
        "--output embeds only the blocks not yet complete.",
    )
    parser.add_argument("--model", required=True, help="model directory (readable on every node)")
    parser.add_argument(
        "--input", required=True, action="append",
        help="a file, directory or glob (repeatable): *.txt one text per line, *.jsonl, *.parquet",
    )
    parser.add_argument("--output", required=True, help="output directory (a rerun resumes)")
    parser.add_argument("--num-actors", type=int, default=1, help="actors embedding in parallel (default 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument("--id-column", default="id", help="id column of JSON-lines / Parquet inputs (default id)")
    parser.add_argument("--text-column", default="text", help="text column of JSON-lines / Parquet inputs (default text)")
    parser.add_argument(
        "--block-rows", type=int, default=DEFAULT_BLOCK_ROWS,
        help=f"rows per block: per task and output file (default {DEFAULT_BLOCK_ROWS})",
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "wgpu", "ndarray", "flex"])
    parser.add_argument("--precision", default="f32", choices=["auto", "f32", "int8", "bf16"])
    parser.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs each actor reserves and computes on (default 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each actor reserves (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m kiln.embed_corpus``: exit code 0 on success, 1 on failure, 2 for bad usage."""
    args = _parser().parse_args(argv)
    try:
        embed_corpus(
            args.model, args.input, args.output, num_actors=args.num_actors,
            batch_size=args.batch_size, address=args.address, id_column=args.id_column,
            text_column=args.text_column, block_rows=args.block_rows, backend=args.backend,
            precision=args.precision, cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor, progress=not args.no_progress,
        )
    except (CorpusError, FileNotFoundError) as error:
        print(f"kiln.embed_corpus: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one line for the user, the rest in Ray's logs
        print(f"kiln.embed_corpus: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
