//! The tracer's integration tests, one test binary with a module per feature: linking the
//! whole library once (in release) instead of once per feature is most of what building
//! the tests costs. They run the real tracer (eBPF, so root) on real Go programs and
//! judge it against what the Go runtime itself says; see `harness` for how.
//!
//! `cargo xtask test` sets GCTRACE_INTEGRATION=1 and GCTRACE_GO_TOOLCHAINS. Without
//! GCTRACE_INTEGRATION the live tests say `skipped: ...` (and log it, see
//! [`harness::skip`]); the tests of pure functions and recorded fixtures always run.
//! One module's tests: `cargo test --release -p tracer --test integration -- gc_cycles::`.

// First, so that its `macro_rules!` (`per_toolchain!`, ...) are in scope in every module.
#[macro_use]
mod harness;

mod alloc_resolution;
mod allocs;
mod arm64_guest;
mod bad_input;
mod binary_analysis;
mod binary_no_buildinfo;
mod binary_stripped;
mod deploy;
mod exe_build;
mod findings;
mod fleet;
mod gc_cycles;
mod json_schema_doc;
mod multi_target;
mod offsets_live;
mod otlp;
mod probe_code;
mod probe_hits;
mod prometheus;
mod recording;
mod runtime_state;
mod safety;
mod settings;
mod stop_reasons;
mod third_party;
mod tui_app;
mod tui_e2e;
mod tui_loop;
mod tui_snapshots;
mod unreleased_go;
mod what_if;
