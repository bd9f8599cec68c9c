//! Every route's schema in process, with MiniLM, against the offline `TextEncoder`.

use base64::Engine;
use serde_json::json;

use crate::support::{app, encoder, floats, get, max_abs_diff, post};

#[tokio::test]
async fn openai_embeddings_match_offline_embed_for_texts_and_token_ids() {
    let (_, app) = app();
    let offline = encoder();
    let texts = [
        "A man is eating food.",
        "",
        "Someone is having a meal at a small table.",
    ];
    let expected = offline.embed(&texts).unwrap();

    let answer = post(
        &app,
        "/v1/embeddings",
        json!({"input": texts, "model": "mini"}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "mini");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let got = floats(&item["embedding"]);
        assert_eq!(got.len(), 384);
        assert!(max_abs_diff(&got, &expected[i]) <= 1e-5, "input {i}");
    }
    let tokens: usize = offline
        .tokenize(&texts)
        .unwrap()
        .iter()
        .map(|t| t.len())
        .sum();
    assert_eq!(body["usage"]["prompt_tokens"], tokens);
    assert_eq!(body["usage"]["total_tokens"], tokens);

    // One string; the model id defaults to the directory name.
    let one = post(&app, "/v1/embeddings", json!({"input": texts[0]}))
        .await
        .json();
    assert_eq!(one["model"], "all-MiniLM-L6-v2");
    assert!(max_abs_diff(&floats(&one["data"][0]["embedding"]), &expected[0]) <= 1e-5);

    // Token ids, one list and a list of lists: the same vectors as the texts.
    let ids: Vec<Vec<u32>> = offline
        .tokenize(&texts)
        .unwrap()
        .into_iter()
        .map(|t| t.ids)
        .collect();
    let single = post(&app, "/v1/embeddings", json!({"input": ids[0]}))
        .await
        .json();
    assert!(max_abs_diff(&floats(&single["data"][0]["embedding"]), &expected[0]) <= 1e-5);
    let lists = post(&app, "/v1/embeddings", json!({"input": ids}))
        .await
        .json();
    for i in 0..3 {
        let got = floats(&lists["data"][i]["embedding"]);
        assert!(max_abs_diff(&got, &expected[i]) <= 1e-5, "ids {i}");
    }

    // base64: little-endian f32 bytes of the same vectors.
    let encoded = post(
        &app,
        "/v1/embeddings",
        json!({"input": texts, "encoding_format": "base64"}),
    )
    .await
    .json();
    for i in 0..3 {
        let text = encoded["data"][i]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let got: Vec<f32> = bytes
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!(max_abs_diff(&got, &expected[i]) <= 1e-5, "base64 {i}");
    }
}

#[tokio::test]
async fn openai_dimensions_truncate_then_renormalize() {
    let (_, app) = app();
    let full = encoder()
        .embed(&["Matryoshka dolls nest inside each other."])
        .unwrap();
    let body = post(
        &app,
        "/v1/embeddings",
        json!({"input": "Matryoshka dolls nest inside each other.", "dimensions": 64}),
    )
    .await
    .json();
    let got = floats(&body["data"][0]["embedding"]);
    assert_eq!(got.len(), 64);
    let norm: f32 = full[0][..64].iter().map(|x| x * x).sum::<f32>().sqrt();
    let expected: Vec<f32> = full[0][..64].iter().map(|x| x / norm).collect();
    assert!(max_abs_diff(&got, &expected) <= 1e-5);
    let length: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((length - 1.0).abs() <= 1e-5, "unit length, got {length}");
    for bad in [0, 385] {
        let answer = post(
            &app,
            "/v1/embeddings",
            json!({"input": "x", "dimensions": bad}),
        )
        .await;
        assert_eq!(answer.expect_error(422), "validation");
    }
}

#[tokio::test]
async fn tei_embed_normalizes_by_default_and_truncates_unless_told_not_to() {
    let (_, app) = app();
    let offline = encoder();
    let long = "word ".repeat(400);
    let texts = vec!["A short text.".to_string(), long.clone()];
    let expected = offline.embed(&texts).unwrap();

    let rows = post(&app, "/embed", json!({"inputs": texts})).await.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (i, row) in rows.iter().enumerate() {
        assert!(max_abs_diff(&floats(row), &expected[i]) <= 1e-5, "row {i}");
    }
    // A single string is a batch of one.
    let single = post(&app, "/embed", json!({"inputs": "A short text."}))
        .await
        .json();
    assert!(max_abs_diff(&floats(&single[0]), &expected[0]) <= 1e-5);

    // normalize: false gives the pooled vector: same direction, not unit length.
    let raw = post(
        &app,
        "/embed",
        json!({"inputs": "A short text.", "normalize": false}),
    )
    .await
    .json();
    let raw = floats(&raw[0]);
    let norm: f32 = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "pooled norm {norm}");
    let rescaled: Vec<f32> = raw.iter().map(|x| x / norm).collect();
    assert!(max_abs_diff(&rescaled, &expected[0]) <= 1e-5);

    // Over max_input_length: refused with truncate: false.
    let refused = post(&app, "/embed", json!({"inputs": [long], "truncate": false})).await;
    assert_eq!(refused.expect_error(413), "too_large");
}

#[tokio::test]
async fn similarity_is_the_cosine_of_offline_embeddings() {
    let (_, app) = app();
    let offline = encoder();
    let source = "A man is eating food.";
    let sentences = [
        "A man is eating a piece of bread.",
        "A monkey is playing drums.",
    ];
    let body = post(
        &app,
        "/similarity",
        json!({"inputs": {"source_sentence": source, "sentences": sentences}}),
    )
    .await;
    assert_eq!(body.status, 200);
    let got = floats(&body.json());
    assert_eq!(got.len(), 2);
    for (i, sentence) in sentences.iter().enumerate() {
        let expected = offline.similarity(source, sentence).unwrap();
        assert!(
            (got[i] - expected).abs() <= 1e-5,
            "{i}: {} vs {expected}",
            got[i]
        );
    }
    assert!(got[0] > got[1], "the related sentence is closer: {got:?}");
    let empty = post(
        &app,
        "/similarity",
        json!({"inputs": {"source_sentence": source, "sentences": []}}),
    )
    .await;
    assert_eq!(empty.expect_error(422), "validation");
}

#[tokio::test]
async fn tokenize_gives_ids_pieces_offsets_and_special_flags() {
    let (_, app) = app();
    let text = "Tokenizing is fun";
    let expected = encoder().tokenize(&[text]).unwrap().remove(0);
    let body = post(&app, "/tokenize", json!({"inputs": text})).await;
    assert_eq!(body.status, 200);
    let body = body.json();
    let tokens = body[0].as_array().unwrap();
    let ids: Vec<u32> = tokens
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, expected.ids);
    assert_eq!(tokens[0]["text"], "[CLS]");
    assert_eq!(tokens[0]["special"], true);
    assert_eq!(tokens.last().unwrap()["text"], "[SEP]");
    assert_eq!(tokens.last().unwrap()["special"], true);
    // The first word piece covers "Tokeniz..." from byte 0 of the original text.
    assert_eq!(tokens[1]["special"], false);
    assert_eq!(tokens[1]["start"], 0);
    let stop = tokens[1]["stop"].as_u64().unwrap() as usize;
    assert_eq!(tokens[1]["text"], &text[..stop]);
    let last_word = &tokens[tokens.len() - 2];
    assert_eq!(last_word["text"], "fun");
    assert_eq!(last_word["start"], 14);
    assert_eq!(last_word["stop"], 17);
    // A list gives a list per input.
    let two = post(&app, "/tokenize", json!({"inputs": ["a", "b c"]}))
        .await
        .json();
    assert_eq!(two.as_array().unwrap().len(), 2);
    assert_eq!(two[1].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn info_health_and_metrics_describe_the_server() {
    let (_, app) = app();
    let info = get(&app, "/info").await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["model_id"], "all-MiniLM-L6-v2");
    assert_eq!(info["dim"], 384);
    assert_eq!(info["max_input_length"], 256);
    assert_eq!(info["backend"], "ndarray");
    assert_eq!(info["precision"], "f32");
    assert_eq!(info["limits"]["max_batch_tokens"], 16384);
    assert_eq!(info["limits"]["max_client_batch_size"], 64);
    assert_eq!(info["limits"]["max_concurrent_requests"], 512);
    assert!(
        info["limits"].get("api_key").is_none(),
        "the key is never shown"
    );

    let health = get(&app, "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    assert_eq!(
        post(
            &app,
            "/embed",
            serde_json::json!({"inputs": ["a b c", "d"]})
        )
        .await
        .status,
        200
    );
    let _ = get(&app, "/nowhere").await;
    let metrics = get(&app, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(metrics.body).unwrap();
    for name in [
        "kiln_requests_total{route=\"/embed\",status=\"200\"} 1",
        "kiln_requests_total{route=\"unmatched\",status=\"404\"} 1",
        "kiln_request_duration_seconds_bucket",
        "kiln_queue_duration_seconds_count",
        "kiln_batch_texts_count",
        "kiln_batch_tokens_sum",
        "kiln_requests_in_flight",
    ] {
        assert!(text.contains(name), "{name} missing in:\n{text}");
    }
    // The /embed request: 2 texts of 5 and 3 tokens (the warm-up pass is not counted).
    assert_eq!(crate::support::metric(&text, "kiln_tokens_total"), 8.0);
    assert_eq!(crate::support::metric(&text, "kiln_batch_texts_sum"), 2.0);
    assert_eq!(
        crate::support::metric(&text, "kiln_requests_in_flight"),
        0.0
    );
}
