//! Bad input, limits and authentication: every refusal is a 4xx with the JSON error body.

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::json;

use crate::support::{app, get, post, send, state_with};
use kiln_serve::router;

fn raw_post(path: &str, content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(kind) = content_type {
        request = request.header(header::CONTENT_TYPE, kind);
    }
    request.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn malformed_bodies_get_4xx_json_errors() {
    let (_, app) = app();
    let json = Some("application/json");
    for path in ["/v1/embeddings", "/embed", "/similarity", "/tokenize"] {
        let not_json = send(&app, raw_post(path, json, b"{\"input\": ".to_vec())).await;
        assert_eq!(not_json.expect_error(400), "invalid_json", "{path}");
        let no_type = send(&app, raw_post(path, None, b"{\"inputs\": \"a\"}".to_vec())).await;
        assert_eq!(
            no_type.expect_error(415),
            "unsupported_media_type",
            "{path}"
        );
        let mut utf8 = b"{\"input\": \"".to_vec();
        utf8.extend_from_slice(&[0xff, 0xfe]);
        utf8.extend_from_slice(b"\", \"inputs\": \"\xff\"}");
        let bad_utf8 = send(&app, raw_post(path, json, utf8)).await;
        assert_eq!(bad_utf8.expect_error(400), "invalid_json", "{path}");
        let wrong_type = post(&app, path, json!({"input": 3, "inputs": 3})).await;
        assert_eq!(wrong_type.expect_error(422), "validation", "{path}");
        let missing = post(&app, path, json!({})).await;
        assert_eq!(missing.expect_error(422), "validation", "{path}");
    }
    let bad_format = post(
        &app,
        "/v1/embeddings",
        json!({"input": "a", "encoding_format": "int8"}),
    )
    .await;
    assert_eq!(bad_format.expect_error(422), "validation");
    let no_special = post(
        &app,
        "/tokenize",
        json!({"inputs": "a", "add_special_tokens": false}),
    )
    .await;
    assert_eq!(no_special.expect_error(422), "validation");
}

#[tokio::test]
async fn empty_and_out_of_range_inputs_are_refused() {
    let (_, app) = app();
    for (path, body) in [
        ("/v1/embeddings", json!({"input": []})),
        ("/v1/embeddings", json!({"input": [[]]})),
        ("/v1/embeddings", json!({"input": [101, 999999, 102]})),
        ("/v1/embeddings", json!({"input": [101, -1, 102]})),
        ("/embed", json!({"inputs": []})),
        ("/tokenize", json!({"inputs": []})),
    ] {
        let answer = post(&app, path, body.clone()).await;
        assert_eq!(answer.expect_error(422), "validation", "{path} {body}");
    }
    // An empty string is a valid text ([CLS] [SEP]).
    assert_eq!(
        post(&app, "/embed", json!({"inputs": ""})).await.status,
        200
    );
    // Token ids are never cut: over max_input_length they are refused.
    let long: Vec<u32> = std::iter::once(101)
        .chain(std::iter::repeat_n(2000, 300))
        .chain(std::iter::once(102))
        .collect();
    let answer = post(&app, "/v1/embeddings", json!({"input": long})).await;
    assert_eq!(answer.expect_error(413), "too_large");
}

#[tokio::test]
async fn limits_give_413_and_429() {
    let state = state_with(|c| {
        c.max_client_batch_size = 3;
        c.max_body_bytes = 1024;
        c.max_concurrent_requests = 2;
    });
    let app = router(state.clone());
    let four = json!({"inputs": ["a", "b", "c", "d"]});
    assert_eq!(
        post(&app, "/embed", four).await.expect_error(413),
        "too_large"
    );
    let four_ids = json!({"input": [[101, 102], [101, 102], [101, 102], [101, 102]]});
    assert_eq!(
        post(&app, "/v1/embeddings", four_ids)
            .await
            .expect_error(413),
        "too_large"
    );
    let similarity = json!({"inputs": {"source_sentence": "a", "sentences": ["b", "c", "d"]}});
    assert_eq!(
        post(&app, "/similarity", similarity)
            .await
            .expect_error(413),
        "too_large"
    );
    let three = json!({"inputs": ["a", "b", "c"]});
    assert_eq!(post(&app, "/embed", three.clone()).await.status, 200);
    let big = json!({"inputs": "x".repeat(2000)});
    assert_eq!(
        post(&app, "/embed", big).await.expect_error(413),
        "too_large"
    );

    // Two requests held in flight: the next is refused at once with Retry-After, while
    // /health and /metrics are still answered.
    state
        .in_flight
        .fetch_add(2, std::sync::atomic::Ordering::SeqCst);
    let refused = post(&app, "/embed", three.clone()).await;
    assert_eq!(refused.expect_error(429), "overloaded");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(get(&app, "/health").await.status, 200);
    assert_eq!(get(&app, "/metrics").await.status, 200);
    state
        .in_flight
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(post(&app, "/embed", three).await.status, 200);
    assert_eq!(state.in_flight.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_404_and_405() {
    let (_, app) = app();
    assert_eq!(
        get(&app, "/v2/embeddings").await.expect_error(404),
        "not_found"
    );
    assert_eq!(
        post(&app, "/nothing", json!({})).await.expect_error(404),
        "not_found"
    );
    assert_eq!(
        get(&app, "/embed").await.expect_error(405),
        "method_not_allowed"
    );
    assert_eq!(
        post(&app, "/health", json!({})).await.expect_error(405),
        "method_not_allowed"
    );
}

#[tokio::test]
async fn api_key_is_required_on_every_route_but_health() {
    let app = router(state_with(|c| c.api_key = Some("s3cret".into())));
    let with_key = |path: &str, key: &str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, key)
            .body(Body::from(json!({"inputs": "a", "input": "a"}).to_string()))
            .unwrap()
    };
    for path in ["/v1/embeddings", "/embed", "/tokenize"] {
        let none = post(&app, path, json!({"inputs": "a", "input": "a"})).await;
        assert_eq!(none.expect_error(401), "unauthorized", "{path}");
        let wrong = send(&app, with_key(path, "Bearer s3cres")).await;
        assert_eq!(wrong.expect_error(401), "unauthorized", "{path}");
        let right = send(&app, with_key(path, "Bearer s3cret")).await;
        assert_eq!(right.status, 200, "{path}");
    }
    for path in ["/info", "/metrics"] {
        assert_eq!(
            get(&app, path).await.expect_error(401),
            "unauthorized",
            "{path}"
        );
    }
    assert_eq!(get(&app, "/health").await.status, 200);
}
