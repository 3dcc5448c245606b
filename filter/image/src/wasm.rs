//! What the image needs to know of the module: that it is one (so a wrong
//! file fails here, not in a gateway after a push), and which proxy-wasm
//! ABI it exports, for the runtime config.

const MAGIC: &[u8; 4] = b"\0asm";
/// A core module. Components (version 0x0d…) are refused: proxy-wasm hosts
/// load core modules only.
const VERSION_1: &[u8; 4] = &[1, 0, 0, 0];

const EXPORT_SECTION: u8 = 7;
const EXPORT_FUNC: u8 = 0;
const ABI_PREFIX: &str = "proxy_abi_version_";

/// The module header: Istio's agent checks the magic too, after the pull.
pub fn check_header(b: &[u8]) -> Result<(), String> {
    if b.len() < 8 || &b[..4] != MAGIC {
        return Err("not a WebAssembly module (no \\0asm magic)".to_string());
    }
    if &b[4..8] != VERSION_1 {
        return Err(format!(
            "not a core WebAssembly module (version bytes {:02x?}, want 01 00 00 00)",
            &b[4..8]
        ));
    }
    Ok(())
}

/// The `proxy_abi_version_*` functions the module exports, sorted. Best
/// effort: the module's validity is its runtime's to judge, so a section
/// this reader cannot follow yields no versions rather than an error, and
/// the config then leaves `abiVersions` out.
pub fn abi_versions(b: &[u8]) -> Vec<String> {
    exports(b).unwrap_or_default()
}

fn exports(b: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader { b, pos: 8 };
    let mut out = Vec::new();
    while r.pos < b.len() {
        let id = r.byte()?;
        let len = usize::try_from(r.leb_u32()?).ok()?;
        let body = r.take(len)?;
        if id != EXPORT_SECTION {
            continue;
        }
        let mut s = Reader { b: body, pos: 0 };
        for _ in 0..s.leb_u32()? {
            let name_len = usize::try_from(s.leb_u32()?).ok()?;
            let name = std::str::from_utf8(s.take(name_len)?).ok()?;
            let kind = s.byte()?;
            s.leb_u32()?; // the index
            if kind == EXPORT_FUNC && name.starts_with(ABI_PREFIX) {
                out.push(name.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Unsigned LEB128, at most the 5 bytes a u32 takes.
    fn leb_u32(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let byte = self.byte()?;
            v |= u32::from(byte & 0x7f).checked_shl(7 * i)?;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module exporting `names` as functions (index 0; never run).
    fn module(names: &[&str]) -> Vec<u8> {
        let mut sec = vec![names.len() as u8];
        for n in names {
            sec.push(n.len() as u8);
            sec.extend_from_slice(n.as_bytes());
            sec.extend_from_slice(&[EXPORT_FUNC, 0]);
        }
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[1, 0]); // an empty type section, skipped
        m.push(EXPORT_SECTION);
        m.push(sec.len() as u8);
        m.extend_from_slice(&sec);
        m
    }

    #[test]
    fn finds_the_abi_exports() {
        let m = module(&["proxy_on_memory_allocate", "proxy_abi_version_0_2_1"]);
        assert_eq!(check_header(&m), Ok(()));
        assert_eq!(abi_versions(&m), ["proxy_abi_version_0_2_1"]);
    }

    #[test]
    fn garbage_after_the_header_gives_no_versions() {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[7, 0xff, 0xff, 0xff, 0xff, 0xff, 1]);
        assert!(abi_versions(&m).is_empty());
        let mut cut = module(&["proxy_abi_version_0_2_1"]);
        cut.truncate(cut.len() - 3);
        assert!(abi_versions(&cut).is_empty());
    }

    #[test]
    fn headers() {
        assert!(check_header(b"").is_err());
        assert!(check_header(b"\0asm").is_err());
        assert!(check_header(b"\x7fELF\x02\x01\x01\0").is_err());
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_err());
        assert_eq!(check_header(b"\0asm\x01\0\0\0"), Ok(()));
    }
}
