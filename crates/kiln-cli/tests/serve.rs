//! `kiln serve` end to end: it announces its real port, answers /health and /v1/embeddings,
//! and on SIGTERM finishes the requests in flight and exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_tests::http_client::request;
use kiln_tests::minilm::minilm_dir;
use serde_json::json;

use crate::common::{fails_one_line, kiln};

/// Starts `kiln serve` on a free port; returns the child and the address it printed.
fn start_server(extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .env_remove("RUST_LOG")
        .args(["serve", "--backend", "ndarray", "--port", "0", "--model"])
        .arg(minilm_dir())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let address: SocketAddr = url.parse().unwrap();
    assert_ne!(address.port(), 0, "the real port is printed");
    (child, address)
}

fn in_flight(address: SocketAddr) -> usize {
    let metrics = request(address, "GET", "/metrics", None).unwrap().text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("kiln_requests_in_flight "))
        .map(|v| v.trim().parse::<f64>().unwrap() as usize)
        .unwrap_or_else(|| panic!("no in-flight gauge in {metrics}"))
}

#[test]
fn serve_answers_and_finishes_in_flight_requests_on_sigterm() {
    let (mut child, address) = start_server(&[]);
    let health = request(address, "GET", "/health", None).unwrap();
    assert_eq!(health.status, 200);
    let answer = request(
        address,
        "POST",
        "/v1/embeddings",
        Some(&json!({"input": ["hello world", "kiln serve"]})),
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 384);

    // Requests of 16 texts of ~60 tokens keep the single model thread busy for a while.
    let clients = 6;
    let done = Arc::new(AtomicUsize::new(0));
    let long = "the server keeps answering while it is asked to stop ".repeat(5);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let done = Arc::clone(&done);
            let texts: Vec<String> = (0..16).map(|i| format!("{c} {i} {long}")).collect();
            std::thread::spawn(move || {
                let answer =
                    request(address, "POST", "/embed", Some(&json!({"inputs": texts}))).unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                answer
            })
        })
        .collect();
    // Every request is either answered or admitted (in flight) before the signal.
    let start = Instant::now();
    loop {
        let admitted = in_flight(address) + done.load(Ordering::SeqCst);
        if admitted >= clients {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "requests not admitted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let answered_before = done.load(Ordering::SeqCst);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for thread in threads {
        let answer = thread.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json().as_array().unwrap().len(), 16);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    assert!(
        answered_before < clients,
        "no request was in flight at the signal: make them heavier"
    );
}

#[test]
fn serve_refuses_unusable_limits_as_usage_errors() {
    let line = fails_one_line(
        kiln()
            .args([
                "serve",
                "--backend",
                "ndarray",
                "--max-batch-tokens",
                "10",
                "--model",
            ])
            .arg(minilm_dir()),
        2,
    );
    assert!(line.contains("--max-batch-tokens"), "{line}");
    let line = fails_one_line(
        kiln()
            .args(["serve", "--backend", "ndarray", "--api-key", "", "--model"])
            .arg(minilm_dir()),
        2,
    );
    assert!(line.contains("--api-key"), "{line}");
}
