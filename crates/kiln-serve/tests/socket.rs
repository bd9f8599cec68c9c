//! The server on a real socket: many concurrent clients, every answer equal to the offline
//! embeddings, and a graceful stop.

use std::net::SocketAddr;

use kiln_serve::serve;
use kiln_tests::http_client::request;
use serde_json::json;

use crate::support::{encoder, floats, max_abs_diff, state_with, texts_of_many_lengths};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_over_tcp_get_offline_embeddings() {
    let state = state_with(|c| c.max_batch_tokens = 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let texts = texts_of_many_lengths(64);
    let expected = encoder().embed(&texts).unwrap();
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let pair = vec![texts[2 * c].clone(), texts[2 * c + 1].clone()];
            tokio::task::spawn_blocking(move || {
                let body = json!({"input": pair, "model": "m"});
                (
                    c,
                    request(address, "POST", "/v1/embeddings", Some(&body)).unwrap(),
                )
            })
        })
        .collect();
    for client in clients {
        let (c, answer) = client.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let body = answer.json();
        for k in 0..2 {
            let got = floats(&body["data"][k]["embedding"]);
            let diff = max_abs_diff(&got, &expected[2 * c + k]);
            assert!(diff <= 1e-5, "client {c} input {k}: {diff}");
        }
    }
    let health = tokio::task::spawn_blocking(move || request(address, "GET", "/health", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(health.status, 200);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let refused = tokio::task::spawn_blocking(move || request(address, "GET", "/health", None))
        .await
        .unwrap();
    assert!(refused.is_err(), "the stopped server still answers");
}
