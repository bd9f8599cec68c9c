//! One module per `kiln` subcommand; each exposes its arguments and `run(&Args)`.

pub mod augment;
pub mod bench;
pub mod classify;
pub mod compress;
pub mod embed;
pub mod explain;
pub mod forward;
pub mod info;
pub mod init;
pub mod serve;
pub mod similarity;
pub mod train_classifier;
