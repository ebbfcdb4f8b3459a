//! Tar header encoding: POSIX ustar blocks plus a PAX extended header
//! when a value does not fit (long names and link targets, sizes ≥ 8 GiB, large ids,
//! out-of-range mtimes) or when the entry carries xattrs (`SCHILY.xattr.<name>`).
//!
//! Everything is normalised so the same entry always encodes to the same bytes: empty
//! `uname`/`gname`, no atime/ctime, PAX records sorted by key, and a fixed PAX header name.

use tar::{EntryType, Header};

/// Largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o777_7777_7777;
/// Largest value of a 7-digit octal field (uid, gid, device numbers).
const MAX_OCTAL_8: u64 = 0o777_7777;
const NAME_LEN: usize = 100;

/// The type of a tar entry written by Strata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Hardlink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl Kind {
    fn entry_type(self) -> EntryType {
        match self {
            Kind::Regular => EntryType::Regular,
            Kind::Hardlink => EntryType::Link,
            Kind::Symlink => EntryType::Symlink,
            Kind::CharDevice => EntryType::Char,
            Kind::BlockDevice => EntryType::Block,
            Kind::Directory => EntryType::Directory,
            Kind::Fifo => EntryType::Fifo,
        }
    }
}

/// Everything that goes into one entry's header.
#[derive(Debug, Clone)]
pub(crate) struct EntryHeader<'a> {
    /// Path inside the layer, `/`-separated, no leading `/` or `./`; directories end in `/`.
    pub name: &'a [u8],
    pub kind: Kind,
    /// Symlink target or hardlink target (a layer path).
    pub link_name: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub device_major: u32,
    pub device_minor: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Appends the header blocks of `entry` (a PAX header and its records when needed, then
/// the ustar header) to `out`.
pub(crate) fn encode(entry: &EntryHeader<'_>, out: &mut Vec<u8>) {
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if entry.name.len() > NAME_LEN {
        records.push((b"path".to_vec(), entry.name.to_vec()));
    }
    if entry.link_name.len() > NAME_LEN {
        records.push((b"linkpath".to_vec(), entry.link_name.to_vec()));
    }
    if entry.size > MAX_OCTAL_12 {
        records.push((b"size".to_vec(), entry.size.to_string().into_bytes()));
    }
    if entry.uid > MAX_OCTAL_8 {
        records.push((b"uid".to_vec(), entry.uid.to_string().into_bytes()));
    }
    if entry.gid > MAX_OCTAL_8 {
        records.push((b"gid".to_vec(), entry.gid.to_string().into_bytes()));
    }
    let mtime_fits = entry.mtime >= 0 && entry.mtime as u64 <= MAX_OCTAL_12;
    if !mtime_fits {
        records.push((b"mtime".to_vec(), entry.mtime.to_string().into_bytes()));
    }
    for (name, value) in entry.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        records.push((key, value.clone()));
    }

    if !records.is_empty() {
        records.sort();
        let mut body = Vec::new();
        for (key, value) in &records {
            pax_record(key, value, &mut body);
        }
        let mut pax = Header::new_ustar();
        set_name(&mut pax, &pax_header_name(entry.name));
        pax.set_entry_type(EntryType::XHeader);
        pax.set_mode(0o644);
        pax.set_uid(0);
        pax.set_gid(0);
        pax.set_mtime(0);
        pax.set_size(body.len() as u64);
        pax.set_cksum();
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(&body);
        pad_to_block(out);
    }

    let mut header = Header::new_ustar();
    set_name(&mut header, entry.name);
    if let Some(ustar) = header.as_ustar_mut() {
        let link = &entry.link_name[..entry.link_name.len().min(NAME_LEN)];
        ustar.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(entry.kind.entry_type());
    header.set_mode(entry.mode & 0o7777);
    header.set_uid(entry.uid.min(MAX_OCTAL_8));
    header.set_gid(entry.gid.min(MAX_OCTAL_8));
    header.set_size(if entry.size > MAX_OCTAL_12 {
        0
    } else {
        entry.size
    });
    header.set_mtime(if mtime_fits { entry.mtime as u64 } else { 0 });
    if matches!(entry.kind, Kind::CharDevice | Kind::BlockDevice) {
        // Values beyond 7 octal digits are written in the GNU base-256 form by `tar`.
        let _ = header.set_device_major(entry.device_major);
        let _ = header.set_device_minor(entry.device_minor);
    } else {
        let _ = header.set_device_major(0);
        let _ = header.set_device_minor(0);
    }
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
}

/// Writes `name` into the ustar name field, truncated (the PAX `path` record, when
/// present, carries the full name).
fn set_name(header: &mut Header, name: &[u8]) {
    if let Some(ustar) = header.as_ustar_mut() {
        let name = &name[..name.len().min(NAME_LEN)];
        ustar.name = [0; NAME_LEN];
        ustar.name[..name.len()].copy_from_slice(name);
    }
}

/// `<dir>/PaxHeaders.0/<base>`, as Go's archive/tar names PAX headers.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = Vec::with_capacity(NAME_LEN);
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend_from_slice(base);
    out.truncate(NAME_LEN);
    out
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + digits(len) {
        len = rest + digits(len);
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn digits(mut n: usize) -> usize {
    let mut count = 1;
    while n >= 10 {
        n /= 10;
        count += 1;
    }
    count
}

/// Pads `out` with zeros to a multiple of 512 bytes.
pub(crate) fn pad_to_block(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// Zero bytes needed after `size` bytes of data to reach a 512-byte boundary.
pub(crate) fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar_format::read::{EntryData, TarReader};
    use std::io::Read;

    fn entry<'a>(name: &'a [u8], xattrs: &'a [(Vec<u8>, Vec<u8>)]) -> EntryHeader<'a> {
        EntryHeader {
            name,
            kind: Kind::Regular,
            link_name: b"",
            mode: 0o100_644,
            uid: 1000,
            gid: 1000,
            size: 3,
            mtime: 1_700_000_000,
            device_major: 0,
            device_minor: 0,
            xattrs,
        }
    }

    fn archive(headers: &[EntryHeader<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for h in headers {
            encode(h, &mut out);
            out.extend_from_slice(&b"abc"[..h.size.min(3) as usize]);
            out.resize(out.len() + padding(h.size.min(3)), 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[test]
    fn pax_record_lengths_are_self_consistent() {
        for value_len in [0usize, 1, 5, 90, 91, 92, 93, 990, 995, 996, 997, 10_000] {
            let mut out = Vec::new();
            pax_record(b"path", &vec![b'x'; value_len], &mut out);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{value_len}");
        }
    }

    #[test]
    fn short_names_are_plain_ustar() {
        let mut out = Vec::new();
        encode(&entry(b"etc/passwd", &[]), &mut out);
        assert_eq!(out.len(), 512);
        let header = Header::from_byte_slice(&out);
        assert_eq!(header.path_bytes().as_ref(), b"etc/passwd");
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(&out[257..265], b"ustar\x0000");
    }

    #[test]
    fn long_names_and_xattrs_use_pax_and_read_back() {
        let long = format!("{}/file", "d".repeat(150));
        let xattrs = vec![
            (b"security.capability".to_vec(), vec![1, 0, 0, 2, 0xff]),
            (b"user.k".to_vec(), b"v\nwith=newline".to_vec()),
        ];
        let mut link = entry(b"link", &[]);
        link.kind = Kind::Symlink;
        link.size = 0;
        let target = "t".repeat(120);
        link.link_name = target.as_bytes();
        let mut old = entry(b"old", &[]);
        old.mtime = -5;
        old.uid = 5_000_000;
        let bytes = archive(&[entry(long.as_bytes(), &xattrs), link, old]);
        let mut reader = TarReader::new(&bytes[..]);
        let first = reader.next_entry().unwrap().unwrap();
        assert_eq!(first.name, long.as_bytes());
        assert_eq!(first.xattrs, xattrs);
        assert_eq!(first.mode, 0o644);
        assert_eq!((first.uid, first.gid, first.size), (1000, 1000, 3));
        let mut data = String::new();
        EntryData(&mut reader).read_to_string(&mut data).unwrap();
        assert_eq!(data, "abc");
        let second = reader.next_entry().unwrap().unwrap();
        assert_eq!(second.kind, EntryType::Symlink);
        assert_eq!(second.link_name, target.as_bytes());
        let third = reader.next_entry().unwrap().unwrap();
        assert_eq!(third.uid, 5_000_000);
        assert_eq!(third.mtime, (-5, 0));
        assert!(reader.next_entry().unwrap().is_none());

        // GNU tar reads what we write, including binary xattr values with newlines.
        if std::process::Command::new("tar")
            .arg("--version")
            .output()
            .is_ok()
        {
            let dir =
                std::env::temp_dir().join(format!("strata-oci-header-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let archive = dir.join("t.tar");
            std::fs::write(&archive, &bytes).unwrap();
            let out = std::process::Command::new("tar")
                .args(["--xattrs", "-tvf"])
                .arg(&archive)
                .output()
                .unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let listing = String::from_utf8_lossy(&out.stdout);
            assert!(listing.contains(&long), "{listing}");
            assert!(listing.contains(&target), "{listing}");
        }
    }

    #[test]
    fn pax_header_names() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"top/"), b"PaxHeaders.0/top");
        assert_eq!(pax_header_name(&[b'x'; 300]).len(), 100);
    }
}
