//! Byte sizes such as `64KiB` or `1MiB`.

/// Why a size string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Not a number followed by an optional known unit.
    #[error(
        "bad size `{0}` (expected a byte count with an optional unit: B, KiB/K, MiB/M, GiB/G, \
         or decimal kB/MB/GB, e.g. 64KiB)"
    )]
    Malformed(String),
    /// The size does not fit in the address space.
    #[error("size `{0}` is too large")]
    TooLarge(String),
}

/// Parses a byte size: a non-negative integer followed by an optional unit, case-insensitive,
/// optionally separated by spaces. Binary units: `K`/`KiB` = 1024, `M`/`MiB` = 1024²,
/// `G`/`GiB` = 1024³. Decimal units: `kB` = 1000, `MB` = 1000², `GB` = 1000³. `B` or no unit
/// means bytes.
///
/// # Errors
/// [`SizeError::Malformed`] for anything else, [`SizeError::TooLarge`] when the result does
/// not fit in a `usize`.
pub fn parse_size(s: &str) -> Result<usize, SizeError> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(SizeError::Malformed(s.to_string())),
    };
    if number.is_empty() {
        return Err(SizeError::Malformed(s.to_string()));
    }
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| SizeError::TooLarge(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64 kib"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn bad_sizes() {
        for bad in ["", "KiB", "-1", "1.5MiB", "12 parsecs", "0x10", "1e6"] {
            assert!(
                matches!(parse_size(bad), Err(SizeError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_size("99999999999999999999999"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(
            parse_size("18446744073709551615GiB"),
            Err(SizeError::TooLarge(_))
        ));
    }
}
