//! The few facts about an ELF file that `cargo xtask dist` checks: the machine, the word size
//! and the program interpreter (the dynamic loader named in `PT_INTERP`, absent from a static
//! executable).

/// `e_machine` of RISC-V.
pub const EM_RISCV: u16 = 243;
const PT_INTERP: u32 = 3;

#[derive(Debug, PartialEq, Eq)]
pub struct ElfFacts {
    pub machine: u16,
    pub class64: bool,
    /// The dynamic loader, `None` for a static executable.
    pub interpreter: Option<String>,
}

/// Reads the header and program headers of a little-endian ELF file.
pub fn facts(bytes: &[u8]) -> Result<ElfFacts, String> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    let class64 = bytes.get(4) == Some(&2);
    if !class64 {
        return Err("not a 64-bit ELF file".into());
    }
    if bytes.get(5) != Some(&1) {
        return Err("not a little-endian ELF file".into());
    }
    let machine = u16_at(bytes, 18)?;
    let phoff = usize_at(bytes, 32)?;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    let mut interpreter = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(bytes, ph)? != PT_INTERP {
            continue;
        }
        let offset = usize_at(bytes, ph + 8)?;
        let size = usize_at(bytes, ph + 32)?;
        let raw = bytes
            .get(offset..offset + size)
            .ok_or("PT_INTERP points past the end of the file")?;
        let name = raw.split(|&b| b == 0).next().unwrap_or_default();
        interpreter = Some(String::from_utf8_lossy(name).into_owned());
    }
    Ok(ElfFacts {
        machine,
        class64,
        interpreter,
    })
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("ELF file cut short at byte {at}"))
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    field(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    field(bytes, at).map(u32::from_le_bytes)
}

fn usize_at(bytes: &[u8], at: usize) -> Result<usize, String> {
    let v = field(bytes, at).map(u64::from_le_bytes)?;
    usize::try_from(v).map_err(|_| format!("ELF offset {v} too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with one program header, PT_INTERP or not.
    fn elf(machine: u16, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        if let Some(path) = interp {
            let offset = b.len() as u64;
            let mut name = path.as_bytes().to_vec();
            name.push(0);
            b[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
            b[72..80].copy_from_slice(&offset.to_le_bytes());
            b[96..104].copy_from_slice(&(name.len() as u64).to_le_bytes());
            b.extend_from_slice(&name);
        }
        b
    }

    #[test]
    fn reads_machine_and_interpreter() {
        let f = facts(&elf(EM_RISCV, Some("/lib/ld-musl-riscv64.so.1"))).expect("facts");
        assert_eq!(
            f,
            ElfFacts {
                machine: EM_RISCV,
                class64: true,
                interpreter: Some("/lib/ld-musl-riscv64.so.1".into()),
            }
        );
        let f = facts(&elf(62, None)).expect("facts");
        assert_eq!((f.machine, f.interpreter), (62, None));
    }

    #[test]
    fn refuses_what_is_not_a_64_bit_little_endian_elf() {
        assert!(facts(b"#!/bin/sh\n").is_err());
        let mut b = elf(EM_RISCV, None);
        b[4] = 1;
        assert!(facts(&b).is_err());
        let b = elf(EM_RISCV, Some("/lib/ld.so"));
        assert!(facts(&b[..b.len() - 4]).is_err(), "a cut interpreter");
    }
}
