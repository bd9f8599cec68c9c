"""One encoder shared by threads: kiln releases the GIL while it computes, and concurrent calls
get the results a lone call gets."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import kiln
from conftest import SENTENCES_1000, encoder_cases, max_abs


def test_text_encoder_shared_by_threads(minilm):
    encoder = kiln.TextEncoder(minilm, backend="flex")
    texts = SENTENCES_1000.read_text(encoding="utf-8").splitlines()[:96]
    chunks = [texts[i::6] for i in range(6)]
    alone = [encoder.embed(chunk, batch_size=8) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(2):
            together = list(pool.map(lambda chunk: encoder.embed(chunk, batch_size=8), chunks))
            for a, b in zip(alone, together):
                assert max_abs(a, b) <= 1e-6


def test_transformer_encoder_shared_by_threads():
    cases = [c for c in encoder_cases() if c.name in ("key_padding", "causal", "float_mask")]
    models = {c.name: kiln.TransformerEncoder.from_dir(c.dir, backend="flex") for c in cases}

    def run(case):
        return models[case.name].forward(
            case.src, src_mask=case.src_mask, src_key_padding_mask=case.key_padding_mask,
            is_causal=case.is_causal,
        )

    alone = {c.name: run(c) for c in cases}
    work = cases * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, work))
    for case, result in zip(work, results):
        assert max_abs(result, alone[case.name]) <= 1e-6
        assert case.output_error(result) <= 1e-5


def test_the_gil_is_released(minilm):
    """A Python thread keeps running while another thread is inside kiln."""
    import threading
    import time

    encoder = kiln.TextEncoder(minilm, backend="flex")
    texts = SENTENCES_1000.read_text(encoding="utf-8").splitlines()[:64]
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    before = ticks
    started = time.monotonic()
    encoder.embed(texts, batch_size=64)
    elapsed = time.monotonic() - started
    stop.set()
    counter.join()
    # With the GIL held for the whole call the counter could not run at all.
    assert elapsed < 0.05 or ticks - before >= 5, (elapsed, ticks - before)
