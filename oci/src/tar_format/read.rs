//! A streaming tar reader: ustar, GNU (long names, base-256 numbers) and PAX headers.
//!
//! Written here rather than taken from the `tar` crate because layers need PAX records
//! parsed by their length prefix (xattr values are binary and may contain newlines, which
//! `tar`'s record iterator splits on) and need the PAX `size` honoured for files ≥ 8 GiB.
//! The `tar` crate still decodes the individual fields of each 512-byte header.
//!
//! Global PAX headers are skipped (as Docker does). Sparse files are refused: no OCI layer
//! writer produces them.

use std::io::{self, Read};

use tar::{EntryType, Header};

const BLOCK: usize = 512;
/// Largest PAX or GNU long-name payload accepted (xattrs included).
const MAX_METADATA: u64 = 64 << 20;

/// One entry's metadata, with PAX and GNU extensions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TarEntry {
    /// The full name, as stored (not normalised).
    pub name: Vec<u8>,
    /// Symlink or hardlink target.
    pub link_name: Vec<u8>,
    pub kind: EntryType,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    pub device_major: u32,
    pub device_minor: u32,
    /// `SCHILY.xattr.*` records, in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads entries one after another; each entry's data is read through [`TarReader::data`]
/// before asking for the next (unread data is skipped).
#[derive(Debug)]
pub(crate) struct TarReader<R> {
    inner: R,
    /// Unread data bytes of the current entry.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    finished: bool,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            finished: false,
        }
    }

    /// The next entry, or `None` at the end-of-archive marker (or a clean EOF).
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<TarEntry>> {
        if self.finished {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;

        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                if pax.is_empty() && long_name.is_none() && long_link.is_none() {
                    self.finished = true;
                    return Ok(None);
                }
                return Err(invalid("tar ends after an extended header"));
            }
            if block.iter().all(|&b| b == 0) {
                self.finished = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let header = Header::from_byte_slice(&block);
            let kind = header.entry_type();
            let field_size = numeric(&block[124..136], "size")?;
            match kind {
                EntryType::XHeader
                | EntryType::XGlobalHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink => {
                    if field_size > MAX_METADATA {
                        return Err(invalid("extended header too large"));
                    }
                    let mut data = vec![0u8; field_size as usize];
                    self.inner.read_exact(&mut data)?;
                    self.skip(padding(field_size))?;
                    match kind {
                        EntryType::XHeader => pax.extend(parse_pax(&data)?),
                        EntryType::XGlobalHeader => {}
                        EntryType::GNULongName => long_name = Some(trim_nul(data)),
                        _ => long_link = Some(trim_nul(data)),
                    }
                    continue;
                }
                _ => {}
            }
            let mut entry = TarEntry {
                name: long_name
                    .take()
                    .unwrap_or_else(|| header.path_bytes().into_owned()),
                link_name: long_link.take().unwrap_or_else(|| {
                    header
                        .link_name_bytes()
                        .map(|l| l.into_owned())
                        .unwrap_or_default()
                }),
                kind,
                size: field_size,
                mode: u32::try_from(numeric(&block[100..108], "mode")? & 0o7777_7777).unwrap_or(0),
                uid: numeric(&block[108..116], "uid")?,
                gid: numeric(&block[116..124], "gid")?,
                mtime: (
                    i64::try_from(numeric(&block[136..148], "mtime")?).unwrap_or(i64::MAX),
                    0,
                ),
                device_major: u32::try_from(numeric(&block[329..337], "devmajor")?).unwrap_or(0),
                device_minor: u32::try_from(numeric(&block[337..345], "devminor")?).unwrap_or(0),
                xattrs: Vec::new(),
            };
            for (key, value) in pax {
                apply_pax(&mut entry, key, value)?;
            }
            // Old (v7/GNU) archives mark directories with a trailing slash only.
            if block[156] == 0 && entry.name.ends_with(b"/") {
                entry.kind = EntryType::Directory;
            }
            if matches!(
                entry.kind,
                EntryType::Link
                    | EntryType::Symlink
                    | EntryType::Directory
                    | EntryType::Char
                    | EntryType::Block
                    | EntryType::Fifo
            ) {
                // Header-only types carry no data whatever the size field says (as in
                // Go's reader, which Docker and containerd use).
                entry.size = 0;
            } else {
                self.remaining = entry.size;
                self.padding = padding(entry.size);
            }
            return Ok(Some(entry));
        }
    }

    /// Reads data of the current entry; 0 at its end.
    pub(crate) fn data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar ends inside an entry's data",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Reads a full block; `false` on a clean EOF before its first byte.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(invalid("tar ends inside a header")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, count: u64) -> io::Result<()> {
        if count == 0 {
            return Ok(());
        }
        let copied = io::copy(&mut (&mut self.inner).take(count), &mut io::sink())?;
        if copied != count {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar ends inside an entry's data",
            ));
        }
        Ok(())
    }
}

/// A `Read` over the current entry's data.
#[derive(Debug)]
pub(crate) struct EntryData<'a, R>(pub &'a mut TarReader<R>);

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.data(buf)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Decodes a numeric header field: octal text (spaces and NULs around it ignored, empty
/// means 0, as Go reads it) or GNU base-256 (high bit set).
fn numeric(field: &[u8], what: &str) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err(invalid(format!("negative {what} field")));
        }
        let mut value: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            if value >> 56 != 0 {
                return Err(invalid(format!("{what} field overflows")));
            }
            value = (value << 8) | u64::from(b);
        }
        return Ok(value);
    }
    let trimmed: &[u8] = {
        let start = field.iter().position(|&b| b != b' ' && b != 0);
        match start {
            None => return Ok(0),
            Some(start) => {
                let end = field
                    .iter()
                    .rposition(|&b| b != b' ' && b != 0)
                    .unwrap_or(start);
                &field[start..=end]
            }
        }
    };
    let text = std::str::from_utf8(trimmed).map_err(|_| invalid(format!("bad {what} field")))?;
    u64::from_str_radix(text, 8).map_err(|_| invalid(format!("bad {what} field {text:?}")))
}

fn trim_nul(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

fn verify_checksum(block: &[u8; BLOCK]) -> io::Result<()> {
    let field = &block[148..156];
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| (b'0'..=b'7').contains(&b))
        .collect();
    let stored = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| u64::from_str_radix(t, 8).ok())
        .ok_or_else(|| invalid("tar header has no valid checksum"))?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(invalid("tar header checksum mismatch"))
    }
}

/// Parses PAX records (`"<len> <key>=<value>\n"`) by their length prefixes.
pub(crate) fn parse_pax(data: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| invalid("malformed pax record"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| invalid("malformed pax record length"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(invalid("malformed pax record"));
        }
        let record = &rest[space + 1..len - 1];
        let equals = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| invalid("malformed pax record"))?;
        out.push((record[..equals].to_vec(), record[equals + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

fn apply_pax(entry: &mut TarEntry, key: Vec<u8>, value: Vec<u8>) -> io::Result<()> {
    let number = |value: &[u8]| -> io::Result<u64> {
        std::str::from_utf8(value)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| invalid("malformed numeric pax record"))
    };
    match key.as_slice() {
        b"path" => entry.name = value,
        b"linkpath" => entry.link_name = value,
        b"size" => entry.size = number(&value)?,
        b"uid" => entry.uid = number(&value)?,
        b"gid" => entry.gid = number(&value)?,
        b"mtime" => {
            if let Some(mtime) = parse_pax_time(&value) {
                entry.mtime = mtime;
            }
        }
        _ => {
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                entry.xattrs.push((name.to_vec(), value));
            } else if key.starts_with(b"GNU.sparse.") {
                return Err(invalid("sparse files are not supported in layers"));
            }
        }
    }
    Ok(())
}

/// Parses a PAX time (`"1700000000"`, `"1700000000.5"`, `"-1.5"`).
pub(crate) fn parse_pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs_text, fraction) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs_text.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, c) in fraction.bytes().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        if i < 9 {
            nanos = nanos * 10 + u32::from(c - b'0');
        }
    }
    for _ in fraction.len().min(9)..9 {
        nanos *= 10;
    }
    if secs_text.starts_with('-') && nanos > 0 {
        // "-1.5" is 1.5 s before the epoch.
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_by_length() {
        let value = b"a\nb=c\n".to_vec();
        let mut data = Vec::new();
        let record_len = 1 + b"SCHILY.xattr.user.x".len() + 1 + value.len() + 1;
        data.extend_from_slice(format!("{} SCHILY.xattr.user.x=", record_len + 2).as_bytes());
        data.extend_from_slice(&value);
        data.push(b'\n');
        data.extend_from_slice(b"12 path=abc\n");
        let records = parse_pax(&data).unwrap();
        assert_eq!(records[0], (b"SCHILY.xattr.user.x".to_vec(), value));
        assert_eq!(records[1], (b"path".to_vec(), b"abc".to_vec()));
        assert!(parse_pax(b"99 path=abc\n").is_err());
        assert!(parse_pax(b"x").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.25"),
            Some((1_700_000_000, 250_000_000))
        );
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"-0.5"), Some((-1, 500_000_000)));
        assert_eq!(parse_pax_time(b"x"), None);
    }

    #[test]
    fn reads_gnu_long_names_and_stops_at_zero_block() {
        // Written by the `tar` crate's builder, which uses GNU long-name entries.
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("{}/file.txt", "x".repeat(200));
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o640);
        builder
            .append_data(&mut header, &long, &b"hello"[..])
            .unwrap();
        let mut bytes = builder.into_inner().unwrap();
        bytes.extend_from_slice(b"trailing");
        let mut reader = TarReader::new(&bytes[..]);
        let entry = reader.next_entry().unwrap().unwrap();
        assert_eq!(entry.name, long.as_bytes());
        assert_eq!(entry.size, 5);
        assert_eq!(entry.mode, 0o640);
        let mut data = Vec::new();
        EntryData(&mut reader).read_to_end(&mut data).unwrap();
        assert_eq!(data, b"hello");
        assert!(reader.next_entry().unwrap().is_none());
        assert!(reader.next_entry().unwrap().is_none());
    }

    #[test]
    fn rejects_corrupt_headers() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(1);
        builder.append_data(&mut header, "a", &b"x"[..]).unwrap();
        let mut bytes = builder.into_inner().unwrap();
        bytes[0] = b'b'; // name changed, checksum not
        let mut reader = TarReader::new(&bytes[..]);
        let err = reader.next_entry().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let truncated = &bytes[..300];
        assert!(TarReader::new(truncated).next_entry().is_err());
    }
}
