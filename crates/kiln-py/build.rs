//! Nothing to build: this script exists so that `[build-dependencies]` (feature unification of
//! the host's libc with `cargo test --workspace`, see Cargo.toml) applies.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
