//! [`Batcher`]: the one thread that owns the model. Requests queue on a bounded channel; each
//! time the model is free the thread forms the next forward pass from what is queued.
//!
//! A forward pass is blocking CPU (or GPU-driving) work, so it runs on a thread of its own
//! rather than on the async runtime. Batches are formed first come, first served, text by
//! text: the oldest request's remaining texts first, then the next request's, until one more
//! text would take the batch over `max_batch_tokens` padded tokens (texts times the longest
//! text). A large client batch is thus split across passes, and small requests arriving
//! meanwhile share a pass with its tail. Within a pass texts are sorted longest first, as
//! `TextEncoder::embed` does. The model computes each text on its own (on the CPU backends the
//! padding is packed and attention is per text; on a GPU the padding is masked), so a text's
//! vector does not depend on what shares its batch.
//!
//! Requests whose client has gone (the answer's receiver dropped, e.g. the connection closed)
//! are dropped before any more of their texts are computed.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kiln_text::TokenizedText;
use tokio::sync::{mpsc, oneshot};

use crate::embedder::Embedder;
use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;

/// The model thread is warming up.
const WARMING: u8 = 0;
/// The model has answered its warm-up pass and takes requests.
const READY: u8 = 1;
/// The model thread has stopped (warm-up failed, or the server is shutting down).
const STOPPED: u8 = 2;

/// Raw (unnormalized) sentence vectors of one request, in its order.
type Answer = Result<Vec<Vec<f32>>, ApiError>;

/// One request's texts and where to send their vectors.
struct Job {
    texts: Vec<TokenizedText>,
    enqueued: Instant,
    reply: oneshot::Sender<Answer>,
}

/// A queued request being computed text by text.
struct Pending {
    job: Job,
    /// Vectors computed so far, by input position.
    rows: Vec<Option<Vec<f32>>>,
    /// Texts not yet put in a batch start here.
    next: usize,
    /// Texts whose vector has come back.
    done: usize,
}

/// The handle requests use to reach the model thread. Cloning it is cheap.
#[derive(Clone)]
pub struct Batcher {
    sender: mpsc::Sender<Job>,
    state: Arc<AtomicU8>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// The outcome of the warm-up pass, to wait for before announcing the server.
pub struct WarmUp {
    result: std::sync::mpsc::Receiver<Result<(), String>>,
}

impl WarmUp {
    /// Blocks until the model has run its warm-up pass; its error when it failed.
    pub fn wait(self) -> Result<(), ServeError> {
        match self.result.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServeError::WarmUp(e)),
            Err(_) => Err(ServeError::WarmUp("the model thread stopped".into())),
        }
    }
}

impl Batcher {
    /// Starts the model thread: it first embeds `warm_up` (so the first request does not pay
    /// for lazy initialisation), then serves batches of at most `max_batch_tokens` padded
    /// tokens. At most `queue` requests wait in the channel. The thread ends when every
    /// [`Batcher`] handle is dropped and the queue is drained.
    pub fn spawn<E: Embedder>(
        mut embedder: E,
        warm_up: TokenizedText,
        max_batch_tokens: usize,
        queue: usize,
        metrics: Metrics,
    ) -> Result<(Self, WarmUp), ServeError> {
        let (sender, receiver) = mpsc::channel(queue.max(1));
        let state = Arc::new(AtomicU8::new(WARMING));
        let (warm_tx, warm_rx) = std::sync::mpsc::channel();
        let thread_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("kiln-batcher".into())
            .spawn(move || {
                let result = run_forward(&mut embedder, std::slice::from_ref(&warm_up)).map(|_| ());
                let ok = result.is_ok();
                if let Err(e) = &result {
                    tracing::error!("model warm-up failed: {}", e.message);
                }
                thread_state.store(if ok { READY } else { STOPPED }, Ordering::SeqCst);
                let _ = warm_tx.send(result.map_err(|e| e.message));
                if ok {
                    serve(embedder, receiver, max_batch_tokens, &metrics);
                    thread_state.store(STOPPED, Ordering::SeqCst);
                }
            })?;
        Ok((Self { sender, state }, WarmUp { result: warm_rx }))
    }

    /// Whether the model has answered its warm-up pass and its thread is running.
    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::SeqCst) == READY
    }

    /// Raw sentence vectors of `texts` (at least one), in their order. Waits for room in the
    /// queue and for the batches that compute them.
    pub async fn embed(&self, texts: Vec<TokenizedText>) -> Answer {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if !self.is_ready() {
            return Err(ApiError::unavailable("the model is not ready"));
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            texts,
            enqueued: Instant::now(),
            reply,
        };
        if self.sender.send(job).await.is_err() {
            return Err(ApiError::unavailable("the model thread has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::unavailable("the model thread has stopped")))
    }
}

/// One forward pass, a panic inside it turned into an error (the thread keeps serving).
fn run_forward<E: Embedder>(embedder: &mut E, texts: &[TokenizedText]) -> Answer {
    match std::panic::catch_unwind(AssertUnwindSafe(|| embedder.embed(texts))) {
        Ok(Ok(rows)) if rows.len() == texts.len() => Ok(rows),
        Ok(Ok(rows)) => Err(ApiError::internal(format!(
            "the model returned {} vectors for {} texts",
            rows.len(),
            texts.len()
        ))),
        Ok(Err(e)) => Err(ApiError::internal(format!("forward pass failed: {e}"))),
        Err(_) => Err(ApiError::internal("forward pass panicked")),
    }
}

/// The model thread's loop: wait for work, form a batch, run it, answer finished requests.
fn serve<E: Embedder>(
    mut embedder: E,
    mut receiver: mpsc::Receiver<Job>,
    max_batch_tokens: usize,
    metrics: &Metrics,
) {
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        if pending.is_empty() {
            match receiver.blocking_recv() {
                Some(job) => pending.push(Pending::new(job)),
                None => return,
            }
        }
        while let Ok(job) = receiver.try_recv() {
            pending.push(Pending::new(job));
        }
        // Clients that went away: drop their remaining texts before computing them.
        pending.retain(|p| !p.job.reply.is_closed());
        let picked = pick_batch(&mut pending, max_batch_tokens, metrics);
        if picked.is_empty() {
            continue;
        }
        let batch: Vec<TokenizedText> = picked
            .iter()
            .map(|&(p, i)| pending[p].job.texts[i].clone())
            .collect();
        let tokens: usize = batch.iter().map(TokenizedText::len).sum();
        metrics.batch_texts.observe(batch.len() as f64);
        metrics.batch_tokens.observe(tokens as f64);
        metrics.tokens.inc_by(tokens as u64);
        match run_forward(&mut embedder, &batch) {
            Ok(rows) => {
                for (&(p, i), row) in picked.iter().zip(rows) {
                    pending[p].rows[i] = Some(row);
                    pending[p].done += 1;
                }
            }
            Err(error) => {
                tracing::error!("{}", error.message);
                // Every request with a text in the failed pass gets the error.
                let mut failed: Vec<usize> = picked.iter().map(|&(p, _)| p).collect();
                failed.sort_unstable();
                failed.dedup();
                for &p in failed.iter().rev() {
                    let job = pending.remove(p).job;
                    let _ = job.reply.send(Err(error.clone()));
                }
                continue;
            }
        }
        let mut index = 0;
        while index < pending.len() {
            if pending[index].done == pending[index].job.texts.len() {
                let finished = pending.remove(index);
                let rows = finished.rows.into_iter().flatten().collect();
                let _ = finished.job.reply.send(Ok(rows));
            } else {
                index += 1;
            }
        }
    }
}

impl Pending {
    fn new(job: Job) -> Self {
        let n = job.texts.len();
        Self {
            job,
            rows: vec![None; n],
            next: 0,
            done: 0,
        }
    }
}

/// The next batch, as `(request, text)` positions sorted longest text first: texts in arrival
/// order while the padded size (texts x longest) stays within `max_batch_tokens`, and always
/// at least one text. Records the queue time of requests whose first text it takes.
fn pick_batch(
    pending: &mut [Pending],
    max_batch_tokens: usize,
    metrics: &Metrics,
) -> Vec<(usize, usize)> {
    let mut picked: Vec<(usize, usize)> = Vec::new();
    let mut longest = 0;
    'requests: for (p, request) in pending.iter_mut().enumerate() {
        while request.next < request.job.texts.len() {
            let len = request.job.texts[request.next].len();
            let new_longest = longest.max(len);
            if !picked.is_empty() && (picked.len() + 1) * new_longest > max_batch_tokens {
                break 'requests;
            }
            if request.next == 0 {
                metrics
                    .queue_duration
                    .observe(request.job.enqueued.elapsed().as_secs_f64());
            }
            longest = new_longest;
            picked.push((p, request.next));
            request.next += 1;
        }
    }
    // Stable: equal lengths keep their arrival order.
    picked.sort_by_key(|&(p, i)| std::cmp::Reverse(pending[p].job.texts[i].len()));
    picked
}
