//! The tar format as layers and archives use it: canonical header encoding ([`write`]) and
//! a streaming reader that parses PAX records by length ([`read`]).

pub(crate) mod read;
pub(crate) mod write;
