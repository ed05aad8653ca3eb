//! The query engine's integration tests, one binary: the engine over a
//! warehouse folder (`engine`), the parsers of untrusted text under random
//! input (`parsers_prop`), and the sandbox that keeps every statement inside
//! lakehose's storage (`sandbox`).

mod engine;
mod grants;
mod parsers_prop;
mod sandbox;
