//! A POSIX ustar writer, just what an image layout needs: regular files and
//! their directories, no links, no long names. Written here rather than
//! taken from a crate because the workspace locks none, and the format is a
//! 512-byte header per entry.
//!
//! Deterministic by construction: entries in byte order of their paths
//! (every directory before what it holds), mtime 0, uid/gid 0, no user or
//! group names, fixed modes. The same files give the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use crate::Error;

const BLOCK: usize = 512;
/// tar's default record (20 blocks): POSIX has an archive end on a record
/// boundary, and some readers warn when it does not.
const RECORD: usize = 20 * BLOCK;

const FILE_MODE: u64 = 0o644;
const DIR_MODE: u64 = 0o755;

/// The archive of `files` (path inside the archive → bytes), with an entry
/// for every directory the paths imply.
pub fn archive(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, Error> {
    let mut dirs = BTreeSet::new();
    for path in files.keys() {
        check_path(path)?;
        for (i, c) in path.char_indices() {
            if c == '/' {
                dirs.insert(format!("{}/", &path[..i]));
            }
        }
    }
    let mut entries: Vec<(&str, Option<&[u8]>)> = dirs.iter().map(|d| (d.as_str(), None)).collect();
    entries.extend(files.iter().map(|(p, b)| (p.as_str(), Some(b.as_slice()))));
    // A directory's path is a prefix of its contents', so byte order puts
    // it first, as extractors that do not create parents need.
    entries.sort_by(|a, b| a.0.cmp(b.0));

    let mut out = Vec::new();
    for (name, content) in entries {
        match content {
            None => out.extend_from_slice(&header(name, b'5', DIR_MODE, 0)?),
            Some(bytes) => {
                out.extend_from_slice(&header(name, b'0', FILE_MODE, bytes.len() as u64)?);
                out.extend_from_slice(bytes);
                out.resize(out.len().next_multiple_of(BLOCK), 0);
            }
        }
    }
    // The end-of-archive marker: two zero blocks, then up to the record.
    out.resize(out.len() + 2 * BLOCK, 0);
    out.resize(out.len().next_multiple_of(RECORD), 0);
    Ok(out)
}

/// Relative, `/`-separated, ASCII, no `.` or `..` parts, and short enough
/// for the header's name field (the layout's longest path,
/// `blobs/sha256/<64 hex>`, is 77 bytes).
fn check_path(path: &str) -> Result<(), Error> {
    let ok = !path.is_empty()
        && path.len() < 100
        && path.is_ascii()
        && !path.ends_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(Error(format!("cannot put {path:?} in a ustar archive")))
    }
}

fn header(name: &str, kind: u8, mode: u64, size: u64) -> Result<[u8; BLOCK], Error> {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode, name)?;
    octal(&mut h[108..116], 0, name)?; // uid
    octal(&mut h[116..124], 0, name)?; // gid
    octal(&mut h[124..136], size, name)?;
    octal(&mut h[136..148], 0, name)?; // mtime
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0, name)?; // devmajor
    octal(&mut h[337..345], 0, name)?; // devminor
                                       // The checksum is taken with its own field as spaces, then written as
                                       // six octal digits, NUL, space.
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum, name)?;
    h[155] = b' ';
    Ok(h)
}

/// `v` as zero-padded octal filling `field` but its last byte, a NUL.
fn octal(field: &mut [u8], v: u64, name: &str) -> Result<(), Error> {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return Err(Error(format!(
            "{name}: {v} does not fit a ustar header field (a file over 8 GiB?)"
        )));
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checksum_and_fields() {
        let h = header("a/b", b'0', 0o644, 5).unwrap();
        assert_eq!(&h[..3], b"a/b");
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[124..136], b"00000000005\0");
        assert_eq!(&h[136..148], b"00000000000\0");
        assert_eq!(&h[257..265], b"ustar\x0000");
        let stored = std::str::from_utf8(&h[148..154]).unwrap();
        let mut blank = h;
        blank[148..156].fill(b' ');
        let sum: u64 = blank.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(u64::from_str_radix(stored, 8).unwrap(), sum);
    }

    #[test]
    fn directories_first_padded_and_ended() {
        let files = BTreeMap::from([
            ("z".to_string(), b"12345".to_vec()),
            ("d/e/f".to_string(), vec![7; 513]),
        ]);
        let t = archive(&files).unwrap();
        assert_eq!(t.len() % RECORD, 0);
        let names: Vec<&[u8]> = t
            .chunks(BLOCK)
            .filter(|b| b[257..262] == *b"ustar")
            .map(|b| &b[..b.iter().position(|&c| c == 0).unwrap()])
            .collect();
        assert_eq!(names, [&b"d/"[..], b"d/e/", b"d/e/f", b"z"]);
    }

    #[test]
    fn bad_paths_are_errors() {
        for p in ["", "/abs", "a/../b", "dir/", &"x".repeat(100), "ä"] {
            let files = BTreeMap::from([(p.to_string(), vec![])]);
            assert!(archive(&files).is_err(), "{p:?}");
        }
    }
}
