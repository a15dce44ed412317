//! The functions a shared library exports, read from its ELF dynamic symbol table without
//! loading it. Loading `libkvm.so` would run its static initialisers, which build its camera
//! and I2C objects: not something to do next to a server that is capturing.
//!
//! Only 64-bit little-endian files (the NanoKVM's riscv64, and the host's x86_64 for tests).

use std::fmt;

const SHT_DYNSYM: u32 = 11;
const SHN_UNDEF: u16 = 0;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SECTION_HEADER_LEN: usize = 64;
const SYMBOL_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    /// 32-bit or big-endian: not what the NanoKVM runs.
    Unsupported(&'static str),
    /// An offset or size points outside the file.
    Truncated(&'static str),
    NoDynamicSymbols,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => f.write_str("not an ELF file"),
            ElfError::Unsupported(what) => write!(f, "unsupported ELF file ({what})"),
            ElfError::Truncated(what) => write!(f, "truncated ELF file ({what})"),
            ElfError::NoDynamicSymbols => f.write_str("no dynamic symbol table"),
        }
    }
}

impl std::error::Error for ElfError {}

fn bytes<'a>(file: &'a [u8], at: u64, len: u64, what: &'static str) -> Result<&'a [u8], ElfError> {
    let start = usize::try_from(at).map_err(|_| ElfError::Truncated(what))?;
    let len = usize::try_from(len).map_err(|_| ElfError::Truncated(what))?;
    start
        .checked_add(len)
        .and_then(|end| file.get(start..end))
        .ok_or(ElfError::Truncated(what))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

fn section(file: &[u8], table: u64, index: u64) -> Result<Section, ElfError> {
    let at = index
        .checked_mul(SECTION_HEADER_LEN as u64)
        .and_then(|o| o.checked_add(table))
        .ok_or(ElfError::Truncated("section header"))?;
    let h = bytes(file, at, SECTION_HEADER_LEN as u64, "section header")?;
    Ok(Section {
        kind: u32_at(h, 4),
        offset: u64_at(h, 24),
        size: u64_at(h, 32),
        link: u32_at(h, 40),
    })
}

/// The names of the functions `file` defines and exports (global or weak), in table order.
pub fn exported_functions(file: &[u8]) -> Result<Vec<String>, ElfError> {
    let ident = bytes(file, 0, 64, "header").map_err(|_| ElfError::NotElf)?;
    if &ident[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if ident[4] != 2 {
        return Err(ElfError::Unsupported("not 64-bit"));
    }
    if ident[5] != 1 {
        return Err(ElfError::Unsupported("not little-endian"));
    }
    let table = u64_at(ident, 0x28);
    if usize::from(u16_at(ident, 0x3A)) != SECTION_HEADER_LEN {
        return Err(ElfError::Unsupported("section header size"));
    }
    let count = u64::from(u16_at(ident, 0x3C));
    let dynsym = (0..count)
        .map(|i| section(file, table, i))
        .find(|s| s.as_ref().map_or(true, |s| s.kind == SHT_DYNSYM))
        .ok_or(ElfError::NoDynamicSymbols)??;
    let strings = section(file, table, u64::from(dynsym.link))?;
    let strings = bytes(file, strings.offset, strings.size, "string table")?;
    let symbols = bytes(file, dynsym.offset, dynsym.size, "symbol table")?;
    let mut names = Vec::new();
    for sym in symbols.chunks_exact(SYMBOL_LEN) {
        let info = sym[4];
        let (binding, kind) = (info >> 4, info & 0xf);
        if u16_at(sym, 6) == SHN_UNDEF
            || kind != STT_FUNC
            || !(binding == STB_GLOBAL || binding == STB_WEAK)
        {
            continue;
        }
        let name = usize::try_from(u32_at(sym, 0))
            .ok()
            .and_then(|at| strings.get(at..))
            .ok_or(ElfError::Truncated("symbol name"))?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        names.push(String::from_utf8_lossy(&name[..end]).into_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_an_elf_file_is_refused_not_panicked_on() {
        assert_eq!(exported_functions(b""), Err(ElfError::NotElf));
        assert_eq!(exported_functions(&[0; 100]), Err(ElfError::NotElf));
        let mut head = vec![0u8; 64];
        head[..4].copy_from_slice(b"\x7fELF");
        head[4] = 1;
        assert!(matches!(
            exported_functions(&head),
            Err(ElfError::Unsupported(_))
        ));
        head[4] = 2;
        head[5] = 1;
        head[0x3A] = 64;
        head[0x3C] = 3;
        head[0x28] = 0xF0; // section headers beyond the end
        assert!(matches!(
            exported_functions(&head),
            Err(ElfError::Truncated(_))
        ));
    }
}
