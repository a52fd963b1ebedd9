//! The `echolab` package: the CLI binary, and the model registry that the binary, the
//! test suites and the benchmarks all read, so a model is listed in exactly one place.

pub mod models;
