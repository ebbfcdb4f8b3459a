//! Layer compression: gzip (parallel, deterministic), zstd (multithreaded), or none.
//!
//! Compression is the slowest stage of writing a layer (sha256 runs at ~1.5 GB/s, deflate
//! at ~50 MB/s per core), so both codecs use several threads:
//!
//! - **gzip**: [`ParallelGzipEncoder`] cuts the input into 1 MiB blocks and deflates them on
//!   worker threads, each block primed with the previous block's last 32 KiB as dictionary
//!   and ended with a sync flush — the pigz scheme — so the result is one ordinary gzip
//!   member that any gunzip reads, compressed almost as well as a serial deflate. The
//!   deflate engine is zlib-rs (through `flate2`), the fastest zlib implementation in Rust.
//! - **zstd**: libzstd's own worker threads (`ZSTD_c_nbWorkers`), with a content checksum.
//!
//! Output bytes depend only on the input and the level, never on the thread count or
//! timing (the gzip block size is fixed; zstd always runs in its multithreaded mode, whose
//! output is the same for any number of workers), so a layer's digest is reproducible
//! across machines. Both encoders start their own threads; none of them touch a rayon pool,
//! so a caller may run a whole layer write as one rayon (or `spawn_blocking`) task.
//!
//! [`decompress`] sniffs the magic bytes of a stream and returns a reader of the plain data.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

use crate::media_type;

/// Default gzip level (zlib's default, the one Docker and BuildKit use).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default zstd level (libzstd's default, the one BuildKit uses).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Size of the independently compressed gzip blocks. Fixed: changing it changes digests.
pub const GZIP_BLOCK_SIZE: usize = 1 << 20;
const DEFLATE_WINDOW: usize = 32 * 1024;

/// Errors setting up a compressor.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The level is outside the codec's range.
    #[error("invalid {codec} compression level {level} (valid: {min}..={max})")]
    InvalidLevel {
        /// `gzip` or `zstd`.
        codec: &'static str,
        /// The rejected level.
        level: i64,
        /// Lowest valid level.
        min: i64,
        /// Highest valid level.
        max: i64,
    },
    /// The codec could not be initialised.
    #[error("cannot start {codec} compressor: {source}")]
    Init {
        /// `gzip` or `zstd`.
        codec: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// How a layer is (to be) compressed, with the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip at `level` (0–9).
    Gzip {
        /// 0 (store) to 9 (best).
        level: u32,
    },
    /// zstd at `level` (libzstd's range, typically 1–22; negative = faster).
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Default for Compression {
    /// gzip at the default level: what every registry client understands.
    fn default() -> Self {
        Compression::gzip()
    }
}

impl Compression {
    /// gzip at [`DEFAULT_GZIP_LEVEL`].
    pub const fn gzip() -> Self {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }

    /// zstd at [`DEFAULT_ZSTD_LEVEL`].
    pub const fn zstd() -> Self {
        Compression::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }

    /// The codec, without the level.
    pub fn kind(&self) -> CompressionKind {
        match self {
            Compression::None => CompressionKind::None,
            Compression::Gzip { .. } => CompressionKind::Gzip,
            Compression::Zstd { .. } => CompressionKind::Zstd,
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_layer_media_type(&self) -> &'static str {
        self.kind().oci_layer_media_type()
    }

    /// The Docker schema 2 layer media type for this compression.
    pub fn docker_layer_media_type(&self) -> &'static str {
        self.kind().docker_layer_media_type()
    }
}

/// A compression codec, as detected from a stream or named by a media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionKind {
    /// Not compressed.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl CompressionKind {
    /// Detects the codec from the first bytes of a stream (at least 4 for zstd).
    pub fn detect(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            CompressionKind::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            CompressionKind::Zstd
        } else {
            CompressionKind::None
        }
    }

    /// The codec a layer media type names (`+gzip`, `.gzip`, `+zstd`, `.zstd`).
    pub fn from_media_type(media_type: &str) -> Self {
        if media_type.ends_with("gzip") {
            CompressionKind::Gzip
        } else if media_type.ends_with("zstd") {
            CompressionKind::Zstd
        } else {
            CompressionKind::None
        }
    }

    /// The OCI layer media type for this codec.
    pub fn oci_layer_media_type(&self) -> &'static str {
        match self {
            CompressionKind::None => media_type::OCI_LAYER_TAR,
            CompressionKind::Gzip => media_type::OCI_LAYER_GZIP,
            CompressionKind::Zstd => media_type::OCI_LAYER_ZSTD,
        }
    }

    /// The Docker schema 2 layer media type for this codec.
    pub fn docker_layer_media_type(&self) -> &'static str {
        match self {
            CompressionKind::None => media_type::DOCKER_LAYER_TAR,
            CompressionKind::Gzip => media_type::DOCKER_LAYER_GZIP,
            CompressionKind::Zstd => media_type::DOCKER_LAYER_ZSTD,
        }
    }
}

/// A compressing writer for any [`Compression`]; call [`Encoder::finish`] at the end.
pub struct Encoder<W: Write> {
    inner: EncoderInner<W>,
}

enum EncoderInner<W: Write> {
    Plain(W),
    Gzip(ParallelGzipEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codec = match self.inner {
            EncoderInner::Plain(_) => "none",
            EncoderInner::Gzip(_) => "gzip",
            EncoderInner::Zstd(_) => "zstd",
        };
        f.debug_struct("Encoder").field("codec", &codec).finish()
    }
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `out` with up to `threads` worker threads (0 or 1: gzip
    /// compresses on the calling thread, zstd uses one worker). The output does not depend
    /// on `threads`.
    pub fn new(out: W, compression: Compression, threads: usize) -> Result<Self, CompressionError> {
        let inner = match compression {
            Compression::None => EncoderInner::Plain(out),
            Compression::Gzip { level } => {
                EncoderInner::Gzip(ParallelGzipEncoder::new(out, level, threads)?)
            }
            Compression::Zstd { level } => {
                let range = zstd::compression_level_range();
                if !range.contains(&level) {
                    return Err(CompressionError::InvalidLevel {
                        codec: "zstd",
                        level: level.into(),
                        min: (*range.start()).into(),
                        max: (*range.end()).into(),
                    });
                }
                let init = |source| CompressionError::Init {
                    codec: "zstd",
                    source,
                };
                let mut encoder = zstd::stream::write::Encoder::new(out, level).map_err(init)?;
                // Always the multithreaded mode, even for one worker: its output differs
                // from the single-threaded mode's but not between worker counts.
                let workers = u32::try_from(threads.clamp(1, 64)).unwrap_or(1);
                encoder.multithread(workers).map_err(init)?;
                encoder.include_checksum(true).map_err(init)?;
                EncoderInner::Zstd(encoder)
            }
        };
        Ok(Encoder { inner })
    }

    /// Flushes the codec's trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            EncoderInner::Plain(w) => Ok(w),
            EncoderInner::Gzip(e) => e.finish(),
            EncoderInner::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            EncoderInner::Plain(w) => w.write(buf),
            EncoderInner::Gzip(e) => e.write(buf),
            EncoderInner::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            EncoderInner::Plain(w) => w.write_all(buf),
            EncoderInner::Gzip(e) => e.write_all(buf),
            EncoderInner::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            EncoderInner::Plain(w) => w.flush(),
            // A gzip flush would need a sync point and change the bytes; blocks are
            // written as they complete, and `finish` writes the rest.
            EncoderInner::Gzip(_) => Ok(()),
            EncoderInner::Zstd(_) => Ok(()),
        }
    }
}

/// Wraps `reader` in a decompressor chosen by its magic bytes; returns the codec found and
/// a reader of the decompressed bytes. Concatenated gzip members and zstd frames are read
/// as one stream.
pub fn decompress<'a, R: Read + 'a>(
    mut reader: R,
) -> io::Result<(CompressionKind, Box<dyn Read + 'a>)> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = CompressionKind::detect(&prefix[..filled]);
    let stream = io::Cursor::new(prefix[..filled].to_vec()).chain(reader);
    let decoded: Box<dyn Read + 'a> = match kind {
        CompressionKind::None => Box::new(stream),
        CompressionKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        CompressionKind::Zstd => Box::new(zstd::stream::read::Decoder::new(stream)?),
    };
    Ok((kind, decoded))
}

/// A writer that decompresses what is written to it (of a known codec) into `W`.
///
/// Used to compute a compressed blob's uncompressed digest in the same pass that stores it.
pub struct DecodingWriter<W: Write> {
    inner: DecodingInner<W>,
}

enum DecodingInner<W: Write> {
    Plain(W),
    Gzip(Box<flate2::write::MultiGzDecoder<W>>),
    Zstd(zstd::stream::write::Decoder<'static, W>),
}

impl<W: Write> fmt::Debug for DecodingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodingWriter").finish_non_exhaustive()
    }
}

impl<W: Write> DecodingWriter<W> {
    /// Decompresses `kind` into `out`.
    pub fn new(kind: CompressionKind, out: W) -> io::Result<Self> {
        let inner = match kind {
            CompressionKind::None => DecodingInner::Plain(out),
            CompressionKind::Gzip => {
                DecodingInner::Gzip(Box::new(flate2::write::MultiGzDecoder::new(out)))
            }
            CompressionKind::Zstd => DecodingInner::Zstd(zstd::stream::write::Decoder::new(out)?),
        };
        Ok(DecodingWriter { inner })
    }

    /// Checks the compressed stream ended cleanly and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            DecodingInner::Plain(w) => Ok(w),
            DecodingInner::Gzip(d) => d.finish(),
            DecodingInner::Zstd(d) => d.finish(),
        }
    }
}

impl<W: Write> Write for DecodingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            DecodingInner::Plain(w) => w.write(buf),
            DecodingInner::Gzip(d) => d.write(buf),
            DecodingInner::Zstd(d) => d.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            DecodingInner::Plain(w) => w.flush(),
            DecodingInner::Gzip(d) => d.flush(),
            DecodingInner::Zstd(d) => d.flush(),
        }
    }
}

/// A gzip writer that deflates fixed-size blocks on worker threads (the pigz scheme).
///
/// The output is a single standard gzip member (header, one deflate stream, CRC-32 and
/// length trailer) whose bytes depend only on the input and the level. Call
/// [`ParallelGzipEncoder::finish`] to complete it; dropping it without finishing leaves the
/// output truncated.
pub struct ParallelGzipEncoder<W: Write> {
    inner: W,
    level: flate2::Compression,
    block: Vec<u8>,
    dictionary: Vec<u8>,
    header_written: bool,
    next_index: u64,
    next_to_write: u64,
    crc: crc32fast::Hasher,
    total_len: u64,
    backend: Backend,
    spare: Vec<Vec<u8>>,
}

impl<W: Write> fmt::Debug for ParallelGzipEncoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelGzipEncoder")
            .field("level", &self.level.level())
            .field("blocks", &self.next_index)
            .field("total_len", &self.total_len)
            .finish_non_exhaustive()
    }
}

enum Backend {
    Inline(Box<Compress>),
    Pool(Pool),
}

struct Pool {
    jobs: Option<mpsc::SyncSender<Job>>,
    results: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, Done>,
    in_flight: usize,
    max_in_flight: usize,
}

struct Job {
    index: u64,
    data: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
}

struct Done {
    index: u64,
    output: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
    data: Vec<u8>,
}

impl<W: Write> ParallelGzipEncoder<W> {
    /// Starts a gzip stream into `out` at `level` (0–9) using `threads` workers (0 or 1:
    /// compress on the calling thread).
    pub fn new(out: W, level: u32, threads: usize) -> Result<Self, CompressionError> {
        if level > 9 {
            return Err(CompressionError::InvalidLevel {
                codec: "gzip",
                level: level.into(),
                min: 0,
                max: 9,
            });
        }
        let level = flate2::Compression::new(level);
        let backend = if threads <= 1 {
            Backend::Inline(Box::new(Compress::new(level, false)))
        } else {
            Backend::Pool(Pool::start(level, threads.min(64)).map_err(|source| {
                CompressionError::Init {
                    codec: "gzip",
                    source,
                }
            })?)
        };
        Ok(ParallelGzipEncoder {
            inner: out,
            level,
            block: Vec::with_capacity(GZIP_BLOCK_SIZE),
            dictionary: Vec::new(),
            header_written: false,
            next_index: 0,
            next_to_write: 0,
            crc: crc32fast::Hasher::new(),
            total_len: 0,
            backend,
            spare: Vec::new(),
        })
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown (as Go's gzip writer).
            self.inner
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(GZIP_BLOCK_SIZE));
        let data = std::mem::replace(&mut self.block, fresh);
        let dictionary = std::mem::take(&mut self.dictionary);
        if !last {
            let tail = &data[data.len().saturating_sub(DEFLATE_WINDOW)..];
            self.dictionary.extend_from_slice(tail);
        }
        let index = self.next_index;
        self.next_index += 1;
        if let Backend::Inline(compressor) = &mut self.backend {
            let output = deflate_block(compressor, &dictionary, &data, last)?;
            self.crc.update(&data);
            self.total_len += data.len() as u64;
            self.inner.write_all(&output)?;
            self.next_to_write += 1;
            self.recycle(data);
            return Ok(());
        }
        self.wait_for_capacity()?;
        if let Backend::Pool(pool) = &mut self.backend {
            pool.send(Job {
                index,
                data,
                dictionary,
                last,
            })?;
            while let Ok(done) = pool.results.try_recv() {
                pool.in_flight -= 1;
                pool.pending.insert(done.index, done);
            }
        }
        self.write_ready()
    }

    /// Blocks until fewer than the allowed number of blocks are queued or unwritten.
    fn wait_for_capacity(&mut self) -> io::Result<()> {
        loop {
            let Backend::Pool(pool) = &mut self.backend else {
                return Ok(());
            };
            if pool.in_flight + pool.pending.len() < pool.max_in_flight {
                return Ok(());
            }
            let done = pool.receive()?;
            pool.pending.insert(done.index, done);
            self.write_ready()?;
        }
    }

    /// Writes every finished block that is next in order.
    fn write_ready(&mut self) -> io::Result<()> {
        loop {
            let Backend::Pool(pool) = &mut self.backend else {
                return Ok(());
            };
            let Some(done) = pool.pending.remove(&self.next_to_write) else {
                return Ok(());
            };
            let output = done.output?;
            self.inner.write_all(&output)?;
            self.crc.combine(&done.crc);
            self.total_len += done.data.len() as u64;
            self.next_to_write += 1;
            self.recycle(done.data);
        }
    }

    fn recycle(&mut self, mut data: Vec<u8>) {
        if self.spare.len() < 4 && data.capacity() >= GZIP_BLOCK_SIZE {
            data.clear();
            self.spare.push(data);
        }
    }

    /// Compresses what is left, writes the gzip trailer, stops the workers and returns the
    /// inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.next_to_write < self.next_index {
            let Backend::Pool(pool) = &mut self.backend else {
                break;
            };
            let done = pool.receive()?;
            pool.pending.insert(done.index, done);
            self.write_ready()?;
        }
        let crc = self.crc.clone().finalize();
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        let isize = (self.total_len & 0xffff_ffff) as u32;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&isize.to_le_bytes())?;
        self.inner.flush()?;
        if let Backend::Pool(pool) = &mut self.backend {
            pool.stop()?;
        }
        let ParallelGzipEncoder { inner, .. } = self;
        Ok(inner)
    }
}

impl<W: Write> Write for ParallelGzipEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.block.len() == GZIP_BLOCK_SIZE {
                self.dispatch(false)?;
            }
            let take = (GZIP_BLOCK_SIZE - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pool {
    fn start(level: flate2::Compression, threads: usize) -> io::Result<Pool> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name("strata-gzip".to_owned())
                .spawn(move || worker(level, &job_rx, &done_tx))?;
            workers.push(handle);
        }
        Ok(Pool {
            jobs: Some(job_tx),
            results: done_rx,
            workers,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: threads * 2 + 1,
        })
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let sender = self.jobs.as_ref().ok_or_else(worker_gone)?;
        sender.send(job).map_err(|_| worker_gone())?;
        self.in_flight += 1;
        Ok(())
    }

    fn receive(&mut self) -> io::Result<Done> {
        let done = self.results.recv().map_err(|_| worker_gone())?;
        self.in_flight -= 1;
        Ok(done)
    }

    fn stop(&mut self) -> io::Result<()> {
        self.jobs = None;
        let mut result = Ok(());
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                result = Err(worker_gone());
            }
        }
        result
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn worker(
    level: flate2::Compression,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Done>,
) {
    let mut compressor = Compress::new(level, false);
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let output = deflate_block(&mut compressor, &job.dictionary, &job.data, job.last);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let result = Done {
            index: job.index,
            output,
            crc,
            data: job.data,
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("gzip worker thread stopped unexpectedly")
}

/// Raw-deflates one block primed with `dictionary`; ends with a sync flush (byte-aligned,
/// stream continues) or, for the last block, with the final block.
fn deflate_block(
    compressor: &mut Compress,
    dictionary: &[u8],
    data: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    compressor.reset();
    if !dictionary.is_empty() {
        compressor
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let start = compressor.total_in();
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = (compressor.total_in() - start) as usize;
        let status = compressor
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (compressor.total_in() - start) as usize;
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                // A sync flush is complete once all input is in and output space was left.
                if !last && consumed == data.len() && out.len() < out.capacity() {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text-like with a pseudo-random walk.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let words: [&[u8]; 8] = [
            b"layer ",
            b"tar ",
            b"strata ",
            b"digest ",
            b"\n",
            b"0123 ",
            b"overlay ",
            b"zz",
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state % 5 == 0 {
                out.push((state >> 32) as u8);
            } else {
                out.extend_from_slice(words[(state % 8) as usize]);
            }
        }
        out.truncate(len);
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn gzip(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut e = ParallelGzipEncoder::new(Vec::new(), 6, threads).unwrap();
        for c in data.chunks(chunk.max(1)) {
            e.write_all(c).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn gzip_round_trips_at_every_size() {
        for len in [
            0,
            1,
            100,
            GZIP_BLOCK_SIZE - 1,
            GZIP_BLOCK_SIZE,
            GZIP_BLOCK_SIZE + 1,
            2 * GZIP_BLOCK_SIZE + 12345,
        ] {
            let data = sample(len);
            let out = gzip(&data, 3, 70_000);
            assert_eq!(gunzip(&out), data, "len {len}");
        }
    }

    #[test]
    fn gzip_output_is_independent_of_threads_and_write_sizes() {
        let data = sample(3 * GZIP_BLOCK_SIZE + 777);
        let one = gzip(&data, 1, 4096);
        assert_eq!(gzip(&data, 2, 1 << 20), one);
        assert_eq!(gzip(&data, 4, 333), one);
        assert_eq!(gunzip(&one), data);
        // Dictionaries keep the ratio close to a serial deflate.
        let mut serial = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        serial.write_all(&data).unwrap();
        let serial = serial.finish().unwrap();
        assert!(
            one.len() < serial.len() + serial.len() / 50,
            "{} vs {}",
            one.len(),
            serial.len()
        );
    }

    #[test]
    fn gzip_rejects_bad_level() {
        assert!(matches!(
            ParallelGzipEncoder::new(Vec::new(), 10, 1),
            Err(CompressionError::InvalidLevel { codec: "gzip", .. })
        ));
    }

    #[test]
    fn zstd_output_is_independent_of_threads() {
        let data = sample(2 * GZIP_BLOCK_SIZE);
        let encode = |threads| {
            let mut e = Encoder::new(Vec::new(), Compression::zstd(), threads).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let one = encode(1);
        assert_eq!(encode(2), one);
        assert_eq!(encode(3), one);
        let (kind, mut r) = decompress(&one[..]).unwrap();
        assert_eq!(kind, CompressionKind::Zstd);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn decompress_detects_codecs() {
        let data = sample(10_000);
        for compression in [Compression::None, Compression::gzip(), Compression::zstd()] {
            let mut e = Encoder::new(Vec::new(), compression, 2).unwrap();
            e.write_all(&data).unwrap();
            let bytes = e.finish().unwrap();
            let (kind, mut r) = decompress(&bytes[..]).unwrap();
            assert_eq!(kind, compression.kind());
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);

            let mut w = DecodingWriter::new(kind, Vec::new()).unwrap();
            for c in bytes.chunks(999) {
                w.write_all(c).unwrap();
            }
            assert_eq!(w.finish().unwrap(), data);
        }
        let (kind, _) = decompress(&b"ab"[..]).unwrap();
        assert_eq!(kind, CompressionKind::None);
    }

    #[test]
    fn media_types() {
        assert_eq!(
            Compression::gzip().oci_layer_media_type(),
            media_type::OCI_LAYER_GZIP
        );
        assert_eq!(
            Compression::zstd().docker_layer_media_type(),
            media_type::DOCKER_LAYER_ZSTD
        );
        assert_eq!(
            CompressionKind::from_media_type(media_type::DOCKER_LAYER_GZIP),
            CompressionKind::Gzip
        );
        assert_eq!(
            CompressionKind::from_media_type(media_type::OCI_LAYER_TAR),
            CompressionKind::None
        );
    }
}
