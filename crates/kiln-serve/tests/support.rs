//! Shared helpers: a served MiniLM, requests through the router, the offline reference.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use kiln::backend::Cpu;
use kiln_serve::{router, AppState, ServeConfig};
use kiln_tests::minilm::minilm_dir;
use kiln_text::TextEncoder;
use serde_json::Value;
use tower::ServiceExt;

/// all-MiniLM-L6-v2 on ndarray.
pub fn encoder() -> TextEncoder<Cpu> {
    TextEncoder::<Cpu>::from_dir(minilm_dir(), &Default::default()).unwrap()
}

/// A warmed-up server state over MiniLM with the default limits changed by `adjust`.
pub fn state_with(adjust: impl FnOnce(&mut ServeConfig)) -> AppState {
    let encoder = encoder();
    let mut config = ServeConfig::new(encoder.max_seq_length());
    adjust(&mut config);
    let (state, warm_up) = AppState::from_encoder(encoder, "ndarray", config).unwrap();
    warm_up.wait().unwrap();
    state
}

/// The router of a default server.
pub fn app() -> (AppState, Router) {
    let state = state_with(|_| {});
    (state.clone(), router(state))
}

/// What a request got back.
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and the JSON error body; returns its `error_type`.
    pub fn expect_error(&self, status: u16) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        body["error_type"].as_str().unwrap().to_string()
    }
}

/// Sends `request` through `app`.
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// `POST path` with a JSON body.
pub async fn post(app: &Router, path: &str, json: Value) -> Answer {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json.to_string()))
        .unwrap();
    send(app, request).await
}

/// `GET path`.
pub async fn get(app: &Router, path: &str) -> Answer {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// A JSON list of numbers as floats.
pub fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// Largest absolute difference of two vectors of the same length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Texts of many lengths (about 5 to 70 tokens), distinct from each other.
pub fn texts_of_many_lengths(n: usize) -> Vec<String> {
    let words = [
        "kiln",
        "serves",
        "sentence",
        "embeddings",
        "quickly",
        "while",
        "batching",
        "requests",
        "of",
        "different",
        "lengths",
        "together",
    ];
    (0..n)
        .map(|i| {
            let len = 1 + (i * 37) % 60;
            let mut text = format!("text {i}:");
            for k in 0..len {
                text.push(' ');
                text.push_str(words[(i + k * 5) % words.len()]);
            }
            text
        })
        .collect()
}

/// The value of an unlabelled metric line `name value` in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}
