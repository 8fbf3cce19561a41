//! gctrace-bpf library
