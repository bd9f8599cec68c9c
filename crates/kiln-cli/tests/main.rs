//! End-to-end tests of the `kiln` binary, in one test binary (one link instead of one per file).

mod augment;
mod back_translation;
mod bench;
mod classify;
mod cli;
mod common;
mod compress;
mod embed;
mod explain;
mod reliability;
mod serve;
