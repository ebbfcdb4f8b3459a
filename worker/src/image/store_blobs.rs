//! The content store as a blob source and a blob sink for `strata-oci`'s archive code.
//!
//! Main type: [`StoreBlobs`], a [`BlobSource`] (archive export reads blobs from the store) and
//! a [`BlobSink`] (archive load and layer export write blobs into it).
//!
//! Key decision: a blob is streamed straight into the store, never staged twice. The oci
//! crate *pushes* bytes into a writer while `Content::ingest` *pulls* them from a reader, so
//! each blob in progress runs one ingest on a helper thread fed through a bounded channel
//! (a few 256 KiB chunks in flight). The ingest stages in the store's own staging directory
//! (which is swept only when its owner dies), hashes, fsyncs and renames; nothing lands in
//! `v1/tmp/` outside an owner's directory, where another process's open would delete it.
//! A writer dropped without commit sends an explicit abort, so a truncated stream is never
//! stored; a stream that ends without either marker is an error too.
//!
//! Every blob this sink stores or finds already present is added to the caller's lease.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use strata_cache::{BlobInfo, ContentError, Lease, StagedBlob, Store};
use strata_oci::archive::{BlobSink, BlobSource};
use strata_oci::Digest;

/// Bytes per chunk sent to the ingest thread.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight: enough to keep both sides busy, small enough to bound memory (1 MiB).
const IN_FLIGHT: usize = 4;

/// Why a blob could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreBlobError {
    /// The content store refused or failed the ingest.
    #[error("cannot store blob in the content store")]
    Ingest {
        /// The cause.
        #[source]
        source: Box<ContentError>,
    },
    /// The stored bytes do not hash to the digest the writer was committed with.
    #[error("stored blob has digest {actual} ({size} bytes), expected {expected}")]
    Mismatch {
        /// The digest the caller computed.
        expected: Digest,
        /// The digest the store computed.
        actual: Digest,
        /// Bytes stored.
        size: u64,
    },
    /// The blob was stored but could not be added to the caller's lease.
    #[error("cannot lease blob {digest}")]
    Lease {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<strata_cache::LeaseError>,
    },
    /// The ingest thread could not be started or died.
    #[error("blob ingest thread failed: {reason}")]
    Thread {
        /// What happened.
        reason: String,
    },
}

impl From<StoreBlobError> for io::Error {
    fn from(err: StoreBlobError) -> io::Error {
        io::Error::other(err)
    }
}

/// A store and a lease, seen as a blob source and sink (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct StoreBlobs<'a> {
    store: &'a Store,
    lease: &'a Lease,
}

impl<'a> StoreBlobs<'a> {
    /// Blobs of `store`; everything written or found present is added to `lease`.
    pub fn new(store: &'a Store, lease: &'a Lease) -> Self {
        StoreBlobs { store, lease }
    }

    /// The store.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// The lease blobs are added to.
    pub fn lease(&self) -> &'a Lease {
        self.lease
    }
}

/// What the ingest thread hands back: the result, and the lease it took the blob under
/// (kept alive until the caller's lease holds the blob too).
type IngestResult = (Result<Ingested, ContentError>, Lease);

/// A blob the thread stored, or staged for a later batch publish.
enum Ingested {
    Stored(BlobInfo),
    Staged(StagedBlob),
}

enum Message {
    Data(Vec<u8>),
    End,
    Abort,
}

/// The reading end: what `Content::ingest` pulls from.
struct ChannelReader {
    rx: Receiver<Message>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Message::Data(data)) => {
                    self.current = data;
                    self.pos = 0;
                }
                Ok(Message::End) => self.done = true,
                Ok(Message::Abort) => return Err(io::Error::other("blob writer aborted")),
                // The writer vanished without saying the blob is complete: never store it.
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob writer went away before the end of the blob",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A blob being written into the store (see [`StoreBlobs`]). Dropping it discards the blob.
#[derive(Debug)]
pub struct StoreBlobWriter {
    tx: Option<SyncSender<Message>>,
    handle: Option<JoinHandle<IngestResult>>,
    buffer: Vec<u8>,
}

impl StoreBlobWriter {
    /// `stage`: write into staging only (see [`StoreBlobs::staging_writer`]).
    fn start(store: &Store, stage: bool) -> Result<StoreBlobWriter, StoreBlobError> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let store = store.clone();
        let handle = std::thread::Builder::new()
            .name("strata-blob-ingest".into())
            .spawn(move || {
                let lease = store.lease();
                let reader = ChannelReader {
                    rx,
                    current: Vec::new(),
                    pos: 0,
                    done: false,
                };
                let result = if stage {
                    store.content().stage(reader, &lease).map(Ingested::Staged)
                } else {
                    store
                        .content()
                        .ingest(reader, None, &lease)
                        .map(Ingested::Stored)
                };
                (result, lease)
            })
            .map_err(|e| StoreBlobError::Thread {
                reason: e.to_string(),
            })?;
        Ok(StoreBlobWriter {
            tx: Some(tx),
            handle: Some(handle),
            buffer: Vec::with_capacity(CHUNK),
        })
    }

    fn send(&mut self, message: Message) -> Result<(), StoreBlobError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(message).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The ingest stopped early: its error says why.
        Err(match self.join() {
            Ok((Err(source), _)) => StoreBlobError::Ingest {
                source: Box::new(source),
            },
            Ok((Ok(_), _)) => StoreBlobError::Thread {
                reason: "blob ingest ended before the blob did".into(),
            },
            Err(e) => e,
        })
    }

    fn flush_chunk(&mut self) -> Result<(), StoreBlobError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.send(Message::Data(chunk))
    }

    fn join(&mut self) -> Result<IngestResult, StoreBlobError> {
        self.tx = None;
        let handle = self.handle.take().ok_or_else(|| StoreBlobError::Thread {
            reason: "blob writer already finished".into(),
        })?;
        handle.join().map_err(|_| StoreBlobError::Thread {
            reason: "ingest thread panicked".into(),
        })
    }

    /// Ends the blob and waits for the ingest thread's result.
    fn end(mut self) -> Result<(Ingested, Lease), StoreBlobError> {
        self.flush_chunk()?;
        self.send(Message::End)?;
        let (result, lease) = self.join()?;
        let done = result.map_err(|source| StoreBlobError::Ingest {
            source: Box::new(source),
        })?;
        Ok((done, lease))
    }

    /// Ends the blob and waits for the store to hold it; its digest is the one the store
    /// computed while writing it.
    fn finish_computed(self) -> Result<(BlobInfo, Lease), StoreBlobError> {
        match self.end()? {
            (Ingested::Stored(info), lease) => Ok((info, lease)),
            (Ingested::Staged(_), _) => Err(StoreBlobError::Thread {
                reason: "a staged blob was finished as a stored one".into(),
            }),
        }
    }

    /// Ends the blob and waits for the store to hold it; checks it against `expected`.
    fn finish(self, expected: &Digest, size: u64) -> Result<(BlobInfo, Lease), StoreBlobError> {
        let (info, lease) = self.finish_computed()?;
        if info.digest != *expected || info.size != size {
            return Err(StoreBlobError::Mismatch {
                expected: *expected,
                actual: info.digest,
                size: info.size,
            });
        }
        Ok((info, lease))
    }
}

impl Write for StoreBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for StoreBlobWriter {
    fn drop(&mut self) {
        if self.handle.is_some() {
            if let Some(tx) = &self.tx {
                let _ = tx.send(Message::Abort);
            }
            let _ = self.join();
        }
    }
}

impl StoreBlobs<'_> {
    /// Starts a blob (the inherent form of [`BlobSink::begin_blob`]).
    pub fn writer(&self) -> Result<StoreBlobWriter, StoreBlobError> {
        StoreBlobWriter::start(self.store, false)
    }

    /// Starts a blob that [`StoreBlobs::finish_staged`] leaves in staging, to be published
    /// with others by [`StoreBlobs::publish`] (one `syncfs` for the batch instead of two
    /// `fsync`s per blob).
    pub fn staging_writer(&self) -> Result<StoreBlobWriter, StoreBlobError> {
        StoreBlobWriter::start(self.store, true)
    }

    /// Ends a blob started with [`StoreBlobs::staging_writer`]; checks it hashes to `digest`
    /// with `size` bytes.
    pub fn finish_staged(
        &self,
        writer: StoreBlobWriter,
        digest: &Digest,
        size: u64,
    ) -> Result<StagedBlob, StoreBlobError> {
        let staged = match writer.end()? {
            (Ingested::Staged(staged), _) => staged,
            (Ingested::Stored(_), _) => {
                return Err(StoreBlobError::Thread {
                    reason: "a stored blob was finished as a staged one".into(),
                })
            }
        };
        let info = staged.info();
        if info.digest != *digest || info.size != size {
            return Err(StoreBlobError::Mismatch {
                expected: *digest,
                actual: info.digest,
                size: info.size,
            });
        }
        Ok(staged)
    }

    /// Makes staged blobs durable and visible in the store, leased (see
    /// [`strata_cache::Content::publish`]).
    pub fn publish(&self, staged: Vec<StagedBlob>) -> Result<Vec<BlobInfo>, StoreBlobError> {
        self.store
            .content()
            .publish(staged, self.lease)
            .map_err(|source| StoreBlobError::Ingest {
                source: Box::new(source),
            })
    }

    /// Completes a blob started with [`StoreBlobs::writer`]: waits until it is stored,
    /// checks it hashes to `digest` with `size` bytes, and leases it.
    pub fn commit(
        &self,
        writer: StoreBlobWriter,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobInfo, StoreBlobError> {
        let (info, thread_lease) = writer.finish(digest, size)?;
        self.keep(info, thread_lease)
    }

    /// Completes a blob whose digest the caller does not know yet (one this process made,
    /// such as a compressed layer): the store's own hash while writing names it, so the
    /// bytes are hashed once. Leases it.
    pub fn commit_computed(&self, writer: StoreBlobWriter) -> Result<BlobInfo, StoreBlobError> {
        let (info, thread_lease) = writer.finish_computed()?;
        self.keep(info, thread_lease)
    }

    fn keep(&self, info: BlobInfo, thread_lease: Lease) -> Result<BlobInfo, StoreBlobError> {
        // Take the caller's lease before the thread's one ends, so the blob is never
        // unprotected.
        self.lease
            .add_blob(&info.digest)
            .map_err(|source| StoreBlobError::Lease {
                digest: info.digest,
                source: Box::new(source),
            })?;
        drop(thread_lease);
        Ok(info)
    }
}

impl BlobSink for StoreBlobs<'_> {
    type Writer = StoreBlobWriter;

    fn has_blob(&self, digest: &Digest) -> bool {
        // Only a blob this lease now holds counts as present: a blob found but pruned
        // before it was leased is simply written again.
        self.store.content().contains(digest) && self.lease.add_blob(digest).is_ok()
    }

    fn begin_blob(&mut self) -> io::Result<StoreBlobWriter> {
        Ok(self.writer()?)
    }

    fn commit_blob(
        &mut self,
        writer: StoreBlobWriter,
        digest: &Digest,
        size: u64,
    ) -> io::Result<()> {
        self.commit(writer, digest, size)?;
        Ok(())
    }
}

impl BlobSource for StoreBlobs<'_> {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        match self.store.content().open(digest) {
            Ok(file) => Ok(Box::new(file)),
            Err(ContentError::NotFound { digest }) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {digest} not found"),
            )),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}
