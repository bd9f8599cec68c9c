//! kiln-serve's tests, in one test binary: the routes in process (tower's `oneshot` on the
//! router) and over a real socket, with all-MiniLM-L6-v2 (fetched by scripts/fetch_minilm.sh
//! on first use), against `TextEncoder::embed`.

mod bad_requests;
mod batching;
mod routes;
mod socket;
mod support;
