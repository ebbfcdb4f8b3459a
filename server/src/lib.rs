//! `strata-server`: BuildKit's gRPC API over the Strata engine.
//!
//! Role: the Control, LLBBridge, session and filesync services that let `docker buildx` use
//! `strata serve` as a remote builder. Only this crate knows gRPC.
//!
//! Status: not built yet. No code on purpose.
