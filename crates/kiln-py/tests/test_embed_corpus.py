"""kiln.embed_corpus on a real local Ray cluster (ray.cluster_utils.Cluster, a head node without
CPUs and two one-CPU worker nodes): a full run equals offline embeddings; a worker killed
mid-run still gives the complete, exact output; a killed driver's rerun embeds only the blocks
it had not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pyarrow as pa  # noqa: E402  (installed by scripts/test_python.sh: never skipped)
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402

import kiln  # noqa: E402
from kiln import embed_corpus as ec  # noqa: E402
from conftest import SENTENCES_1000  # noqa: E402

BLOCK_ROWS = 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four inputs of every kind, 411 rows: the ids and texts each row must come back with."""
    root = tmp_path_factory.mktemp("corpus")
    lines = SENTENCES_1000.read_text(encoding="utf-8").splitlines()
    rows: dict[str, str] = {}
    a = lines[:150]
    (root / "a.txt").write_text("\n".join(a) + "\n", encoding="utf-8")
    rows.update({f"a.txt:{i + 1}": t for i, t in enumerate(a)})
    # CRLF line ends, an empty line, no newline at the end.
    b = lines[150:230] + [""] + lines[230:289]
    (root / "b.txt").write_bytes("\r\n".join(b).encode("utf-8"))
    rows.update({f"b.txt:{i + 1}": t for i, t in enumerate(b)})
    c = lines[289:350]
    with open(root / "c.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(c):
            f.write(json.dumps({"id": f"c{i}", "text": t, "other": i}) + "\n")
    rows.update({f"c{i}": t for i, t in enumerate(c)})
    d = lines[350:410]
    table = pa.table({"id": list(range(1000, 1000 + len(d))), "text": d})
    pq.write_table(table, root / "d.parquet", row_group_size=25)
    rows.update({str(1000 + i): t for i, t in enumerate(d)})
    return root, rows


@pytest.fixture(scope="module")
def offline(minilm, corpus):
    """Single-process embeddings of every row (kiln.TextEncoder equals `kiln embed`)."""
    _, rows = corpus
    ids = list(rows)
    vectors = kiln.TextEncoder(minilm, backend="flex").embed([rows[i] for i in ids])
    return dict(zip(ids, vectors))


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def read_output(out: Path) -> dict[str, np.ndarray]:
    """Every row of the part files; fails on a row written twice."""
    rows: dict[str, np.ndarray] = {}
    for part in sorted(out.glob("part-*.parquet")):
        table = pq.read_table(part)
        assert table.schema.field("id").type == pa.string()
        assert table.schema.field("embedding").type == pa.list_(pa.float32())
        for id_, vector in zip(table.column("id").to_pylist(), table.column("embedding").to_pylist()):
            assert id_ not in rows, f"{id_} written twice"
            rows[id_] = np.asarray(vector, dtype=np.float32)
    return rows


def check_complete(out: Path, corpus, offline) -> dict:
    _, rows = corpus
    got = read_output(out)
    assert set(got) == set(rows), "rows lost or invented"
    worst = max(float(np.max(np.abs(got[i] - offline[i]))) for i in rows)
    assert worst <= 1e-5, worst
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == len(rows) and manifest["dim"] == 384
    assert sum(b["rows"] for b in manifest["blocks"]) == len(rows)
    return manifest


def driver(cluster, corpus, minilm, out: Path, delay: float) -> subprocess.Popen:
    root, _ = corpus
    env = dict(os.environ, **{ec.DELAY_ENV: str(delay)})
    return subprocess.Popen(
        [sys.executable, "-m", "kiln.embed_corpus", "--model", str(minilm),
         "--input", str(root / "*"), "--output", str(out), "--num-actors", "2",
         "--batch-size", "8", "--block-rows", str(BLOCK_ROWS), "--backend", "flex",
         "--address", cluster.address, "--no-progress"],
        env=env,
    )


def wait_for_parts(out: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(list(out.glob("part-*.parquet"))) < count:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.2)


def map_workers(cluster) -> list[int]:
    """PIDs of Ray Data's live actors (the embedding actors)."""
    actors = cluster.global_state.actor_table(None, actor_state_name="ALIVE")
    return [
        info["Pid"]
        for info in actors.values()
        if "MapWorker" in info.get("ActorClassName", "") and info.get("Pid")
    ]


def test_full_run_equals_offline_embeddings(cluster, corpus, minilm, offline, tmp_path):
    root, rows = corpus
    out = tmp_path / "out"
    manifest = ec.embed_corpus(
        minilm, str(root / "*"), out, num_actors=2, batch_size=8, block_rows=BLOCK_ROWS,
        address=cluster.address, backend="flex", progress=False,
    )
    blocks = 8 + 7 + 4 + 3  # 150, 140, 61 and 60 rows in blocks of 20
    assert len(manifest["blocks"]) == blocks == len(list(out.glob("part-*.parquet")))
    assert len(manifest["embedded_blocks"]) == blocks and manifest["skipped_blocks"] == []
    check_complete(out, corpus, offline)

    # A rerun finds every block done and embeds nothing.
    again = ec.embed_corpus(
        minilm, str(root / "*"), out, num_actors=2, block_rows=BLOCK_ROWS,
        address=cluster.address, backend="flex", progress=False,
    )
    assert again["embedded_blocks"] == [] and len(again["skipped_blocks"]) == blocks


def test_worker_killed_mid_run(cluster, corpus, minilm, offline, tmp_path):
    out = tmp_path / "out"
    proc = driver(cluster, corpus, minilm, out, delay=0.5)
    try:
        wait_for_parts(out, 3, proc)
        pids = map_workers(cluster)
        assert pids, "no embedding actor found"
        os.kill(pids[0], signal.SIGKILL)
        assert not (out / "manifest.json").exists(), "the run ended before the kill"
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    manifest = check_complete(out, corpus, offline)
    assert manifest["skipped_blocks"] == []


def test_driver_killed_and_rerun(cluster, corpus, minilm, offline, tmp_path):
    out = tmp_path / "out"
    proc = driver(cluster, corpus, minilm, out, delay=0.5)
    try:
        wait_for_parts(out, 4, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Ray ends the dead driver's actors; wait for them, so nothing is written behind our back.
    deadline = time.monotonic() + 120
    while map_workers(cluster):
        assert time.monotonic() < deadline, "the killed driver's actors live on"
        time.sleep(0.5)
    finished = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")
    }
    assert 4 <= len(finished)
    assert not (out / "manifest.json").exists()

    rerun = driver(cluster, corpus, minilm, out, delay=0)
    assert rerun.wait(timeout=600) == 0
    manifest = check_complete(out, corpus, offline)
    total = len(manifest["blocks"])
    skipped = {f"part-{name}.parquet" for name in manifest["skipped_blocks"]}
    embedded = {f"part-{name}.parquet" for name in manifest["embedded_blocks"]}
    # Every block finished before the kill was skipped, and only the others were embedded.
    assert set(finished) == skipped
    assert len(embedded) == total - len(finished) and not (embedded & skipped)
    for name, (inode, mtime) in finished.items():
        stat = (out / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == (inode, mtime), f"{name} was rewritten"


def test_plan_errors(tmp_path, corpus, minilm):
    root, _ = corpus
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.txt").write_text("one\n")
    with pytest.raises(ValueError, match="same file name"):
        ec.embed_corpus(minilm, [str(root / "a.txt"), str(tmp_path / "x" / "a.txt")], tmp_path / "o1")
    with pytest.raises(ValueError, match="no column 'body'"):
        ec.embed_corpus(minilm, str(root / "c.jsonl"), tmp_path / "o2", text_column="body")
    with pytest.raises(ValueError, match="no file matches"):
        ec.embed_corpus(minilm, str(tmp_path / "none*.txt"), tmp_path / "o3")
    with pytest.raises(FileNotFoundError):
        ec.embed_corpus(tmp_path / "no-model", str(root / "a.txt"), tmp_path / "o4")
    out = tmp_path / "o5"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"format": 1, "sources": []}))
    with pytest.raises(ValueError, match="other inputs or settings"):
        ec.embed_corpus(minilm, str(root / "a.txt"), out)
