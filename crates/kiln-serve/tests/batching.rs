//! The batcher: served vectors equal `TextEncoder::embed`'s whatever shares their batch, large
//! client batches are split across forward passes, and requests whose client went away are
//! not computed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_serve::{router, Batcher, Embedder, Metrics};
use kiln_text::TokenizedText;
use serde_json::json;

use crate::support::{
    encoder, floats, get, max_abs_diff, metric, post, state_with, texts_of_many_lengths,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_of_mixed_lengths_match_offline_embeddings() {
    // Small batches (at most 512 padded tokens): texts of one request are spread over several
    // passes and share them with other requests' texts.
    let state = state_with(|c| c.max_batch_tokens = 512);
    let app = router(state);
    let texts = texts_of_many_lengths(48);
    let expected = encoder().embed(&texts).unwrap();

    let mut tasks = Vec::new();
    for (r, group) in texts.chunks(3).enumerate() {
        let app = app.clone();
        let group = group.to_vec();
        tasks.push(tokio::spawn(async move {
            let route = if r % 2 == 0 {
                "/embed"
            } else {
                "/v1/embeddings"
            };
            let body = if r % 2 == 0 {
                json!({"inputs": group})
            } else {
                json!({"input": group})
            };
            let answer = post(&app, route, body).await;
            assert_eq!(answer.status, 200);
            let body = answer.json();
            let rows: Vec<Vec<f32>> = if r % 2 == 0 {
                body.as_array().unwrap().iter().map(floats).collect()
            } else {
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| floats(&d["embedding"]))
                    .collect()
            };
            (r, rows)
        }));
    }
    for task in tasks {
        let (r, rows) = task.await.unwrap();
        assert_eq!(rows.len(), 3);
        for (k, row) in rows.iter().enumerate() {
            let i = r * 3 + k;
            let diff = max_abs_diff(row, &expected[i]);
            assert!(diff <= 1e-5, "text {i}: max abs diff {diff}");
        }
    }

    // One client batch larger than a forward pass is split and joined in order.
    let big: Vec<String> = texts_of_many_lengths(40);
    let before = metric(&metrics_text(&app).await, "kiln_batch_texts_count");
    let rows = post(&app, "/embed", json!({"inputs": big})).await.json();
    let after_text = metrics_text(&app).await;
    let passes = metric(&after_text, "kiln_batch_texts_count") - before;
    assert!(
        passes >= 2.0,
        "40 texts in {passes} passes of <= 512 tokens"
    );
    let expected = encoder().embed(&big).unwrap();
    for (i, row) in rows.as_array().unwrap().iter().enumerate() {
        assert!(
            max_abs_diff(&floats(row), &expected[i]) <= 1e-5,
            "big batch text {i}"
        );
    }
    // Some pass held more than one text.
    let texts = metric(&after_text, "kiln_batch_texts_sum");
    let count = metric(&after_text, "kiln_batch_texts_count");
    assert!(texts > count, "{texts} texts in {count} passes");
}

async fn metrics_text(app: &axum::Router) -> String {
    String::from_utf8(get(app, "/metrics").await.body).unwrap()
}

/// Records the first id of every text it computes; each pass takes `delay`.
struct Recorder {
    seen: Arc<Mutex<Vec<u32>>>,
    delay: Duration,
}

impl Embedder for Recorder {
    fn embed(&mut self, texts: &[TokenizedText]) -> Result<Vec<Vec<f32>>, String> {
        std::thread::sleep(self.delay);
        let mut seen = self.seen.lock().unwrap();
        seen.extend(texts.iter().map(|t| t.ids[0]));
        Ok(texts
            .iter()
            .map(|t| vec![t.ids[0] as f32, t.len() as f32])
            .collect())
    }
}

fn text(id: u32, len: usize) -> TokenizedText {
    TokenizedText {
        ids: vec![id; len],
        type_ids: vec![0; len],
        tokens: Vec::new(),
        offsets: vec![(0, 0); len],
        special: vec![false; len],
        truncated: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_whose_client_went_away_are_not_computed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        seen: Arc::clone(&seen),
        delay: Duration::from_millis(300),
    };
    let (batcher, warm_up) = Batcher::spawn(recorder, text(0, 2), 64, 16, Metrics::new()).unwrap();
    tokio::task::spawn_blocking(move || warm_up.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(batcher.is_ready());

    // A occupies the model; B queues behind it and is abandoned; C queues after B.
    let a = tokio::spawn({
        let batcher = batcher.clone();
        async move { batcher.embed(vec![text(1, 4)]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = tokio::spawn({
        let batcher = batcher.clone();
        async move { batcher.embed(vec![text(2, 4), text(2, 5)]).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.abort();
    let c = batcher
        .embed(vec![text(3, 3), text(3, 60), text(3, 7)])
        .await
        .unwrap();
    let a = a.await.unwrap().unwrap();
    assert_eq!(a, vec![vec![1.0, 4.0]]);
    // C's vectors in its input order, although its passes ran longest first and split
    // (60 + 7 + 3 tokens padded to 60 exceed 64).
    assert_eq!(c, vec![vec![3.0, 3.0], vec![3.0, 60.0], vec![3.0, 7.0]]);
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.contains(&2),
        "the abandoned request was computed: {seen:?}"
    );
    assert_eq!(seen.iter().filter(|&&id| id == 3).count(), 3);
}
