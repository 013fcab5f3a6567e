//! Keys, sessions and tags: the overlay's pre-shared key, session ids, and the per-direction
//! link keys derived from them, which encrypt and authenticate datagrams.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM, NONCE_LEN};
use sha2::Sha256;

use crate::model::Name;

use super::packet::TAG_LEN;

type HmacSha256 = Hmac<Sha256>;

/// The pre-shared key of an overlay: 32 bytes that every daemon of the overlay holds. It
/// should be uniformly random (e.g. `head -c32 /dev/urandom | xxd -p -c64`): it keys the
/// derivation of link keys directly.
#[derive(Clone, PartialEq, Eq)]
pub struct OverlayKey([u8; 32]);

impl OverlayKey {
    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        OverlayKey(bytes)
    }
}

impl OverlayKey {
    /// The proof that a control client holds this key, for the server's `challenge` (see
    /// [`crate::control`]): HMAC-SHA-256 keyed with the overlay key over a label distinct from
    /// every link-key derivation's, then the challenge. Compare it with [`OverlayKey::verify_control`].
    pub fn control_proof(&self, challenge: &[u8]) -> [u8; 32] {
        let mut mac = hmac_with(&self.0);
        mac.update(CONTROL_LABEL);
        mac.update(challenge);
        mac.finalize().into_bytes().into()
    }

    /// Whether `proof` is [`OverlayKey::control_proof`] of `challenge`, in constant time.
    pub fn verify_control(&self, challenge: &[u8], proof: &[u8]) -> bool {
        let mut mac = hmac_with(&self.0);
        mac.update(CONTROL_LABEL);
        mac.update(challenge);
        mac.verify_slice(proof).is_ok()
    }
}

/// The label of control-API proofs; it differs from [`KEY_LABEL`] in its first bytes, so no
/// proof is ever a link key.
const CONTROL_LABEL: &[u8] = b"vnetd control v1";

impl fmt::Debug for OverlayKey {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OverlayKey(..)")
    }
}

/// Why a string is not an overlay key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an overlay key is 64 hexadecimal digits (32 bytes)")]
pub struct BadOverlayKey;

impl FromStr for OverlayKey {
    type Err = BadOverlayKey;

    /// 64 hexadecimal digits, either case, surrounding white space ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().as_bytes();
        if s.len() != 64 {
            return Err(BadOverlayKey);
        }
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(s.chunks_exact(2)) {
            let digits = std::str::from_utf8(pair).map_err(|_| BadOverlayKey)?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| BadOverlayKey)?;
        }
        Ok(OverlayKey(key))
    }
}

/// A daemon's session: one run of the daemon, from start to exit. Session ids of one daemon
/// increase from run to run (see [`SessionId::starting_at`]); zero is never a session id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(NonZeroU64);

impl SessionId {
    /// The session with this id; `None` for zero.
    pub const fn new(id: u64) -> Option<Self> {
        match NonZeroU64::new(id) {
            Some(id) => Some(SessionId(id)),
            None => None,
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// The session id for a daemon that starts at `since_unix_epoch` (its wall clock): the
    /// microseconds since 1970 shifted left by 12 bits, with the low 12 bits of `salt` (a
    /// random number) below them — so two daemons starting in the same microsecond still
    /// differ with probability 4095/4096 — raised to `previous + 1` if the daemon remembers
    /// its previous session and the clock is not past it (a clock that stepped back). Ids
    /// stay below 2^64 until the year 2112, after which they saturate.
    pub fn starting_at(since_unix_epoch: Duration, salt: u16, previous: Option<SessionId>) -> Self {
        let micros = u64::try_from(since_unix_epoch.as_micros()).unwrap_or(u64::MAX);
        let from_clock = micros.saturating_mul(1 << 12) | u64::from(salt & 0x0fff);
        let after_previous = previous.map_or(1, |p| p.get().saturating_add(1));
        let id = from_clock.max(after_previous);
        SessionId(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }

    /// The low 16 bits, which a datagram carries as its receiver hint.
    pub const fn hint(self) -> u16 {
        let bytes = self.0.get().to_be_bytes();
        u16::from_be_bytes([bytes[6], bytes[7]])
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0.get())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The key that protects one direction of one link in one pair of sessions: an AES-128-GCM
/// key (ring's implementation), derived with HKDF-Expand-SHA-256 (RFC 5869) with the overlay
/// key as the pseudo-random key and, as info, a label, the sender's session and name and the
/// receiver's session (zero for a hello, which is sent before the sender knows it) and name.
///
/// The nonce of a datagram is its sequence number (see "Encryption and authentication" in
/// [`crate::wire`]), which the caller must never use twice with one key.
#[derive(Clone)]
pub struct LinkKey {
    aead: LessSafeKey,
}

impl fmt::Debug for LinkKey {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// The label that makes the derivation specific to this protocol and version.
const KEY_LABEL: &[u8] = b"vnetd link v2";

/// An HMAC-SHA-256 instance keyed with `key` (at most 64 bytes). HMAC pads a key shorter
/// than the hash's block with zeros, so padding it here changes nothing and needs no
/// fallible constructor.
fn hmac_with(key: &[u8; 32]) -> HmacSha256 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <HmacSha256 as Mac>::new(&block.into())
}

/// The 96-bit nonce of sequence number `seq`: four zero bytes, then `seq` big-endian.
fn nonce(seq: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

impl LinkKey {
    /// The key for datagrams from `from` (name and session) to `to` (name, and session if
    /// known: `None` for hellos).
    pub fn derive(
        overlay: &OverlayKey,
        from: (&Name, SessionId),
        to: (&Name, Option<SessionId>),
    ) -> Self {
        let mut prk = hmac_with(&overlay.0);
        prk.update(KEY_LABEL);
        prk.update(&from.1.get().to_be_bytes());
        prk.update(&to.1.map_or(0, SessionId::get).to_be_bytes());
        for name in [from.0, to.0] {
            let name = name.as_str().as_bytes();
            // A Name is at most 63 bytes, so its length fits the octet.
            prk.update(&[u8::try_from(name.len()).unwrap_or(u8::MAX)]);
            prk.update(name);
        }
        prk.update(&[1]); // HKDF-Expand's block counter: one block of 32 bytes.
        let okm: [u8; 32] = prk.finalize().into_bytes().into();
        // 16 bytes is AES-128's key length: `new` cannot fail.
        let aead = UnboundKey::new(&AES_128_GCM, &okm[..16])
            .map(LessSafeKey::new)
            .unwrap_or_else(|_| unreachable!("AES-128 takes a 16-byte key"));
        LinkKey { aead }
    }

    /// Encrypts `payload` in place, authenticating it with `header` too, for sequence
    /// number `seq`; returns the tag. An empty `payload` makes it a MAC of `header` alone
    /// (hellos, which must stay readable).
    pub fn seal(&self, seq: u64, header: &[u8], payload: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        // Sealing fails only for inputs longer than GCM takes (64 GiB); a datagram is not.
        if let Ok(t) = self
            .aead
            .seal_in_place_separate_tag(nonce(seq), Aad::from(header), payload)
        {
            tag.copy_from_slice(t.as_ref());
        }
        tag
    }

    /// Checks `tag` over `header` and the encrypted `payload` for sequence number `seq` and,
    /// if it is right, decrypts `payload` in place: whether it was. On a wrong tag `payload`
    /// is left scrambled (the datagram is to be dropped anyway).
    pub fn open(&self, seq: u64, header: &[u8], payload: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = Tag::try_from(tag) else {
            return false;
        };
        self.aead
            .open_in_place_separate_tag(nonce(seq), Aad::from(header), tag, payload, 0..)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn overlay_key_parses_hex_and_hides_itself() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let key: OverlayKey = hex.parse().unwrap();
        assert_eq!(key.0[1], 0x11);
        assert_eq!(key.0[31], 0xff);
        assert_eq!(format!("{key:?}"), "OverlayKey(..)");
        for bad in [
            "",
            "00",
            &hex[1..],
            &format!("{}g", &hex[1..]),
            &format!("{hex}00"),
        ] {
            assert_eq!(bad.parse::<OverlayKey>(), Err(BadOverlayKey), "{bad}");
        }
        assert!(format!(" {hex}\n").parse::<OverlayKey>().is_ok());
    }

    #[test]
    fn session_ids_increase_and_survive_a_clock_step_back() {
        let t = Duration::from_secs(1_700_000_000);
        let first = SessionId::starting_at(t, 7, None);
        assert_eq!(first.get() >> 12, 1_700_000_000_000_000);
        assert_eq!(first.get() & 0xfff, 7);
        let later = SessionId::starting_at(t + Duration::from_micros(1), 0, Some(first));
        assert!(later > first);
        // The clock stepped back an hour: the remembered session still orders the new one.
        let stepped = SessionId::starting_at(t - Duration::from_secs(3600), 9, Some(later));
        assert_eq!(stepped.get(), later.get() + 1);
        // Zero time and salt never give the zero id; far future saturates.
        assert_eq!(SessionId::starting_at(Duration::ZERO, 0, None).get(), 1);
        assert!(SessionId::starting_at(Duration::MAX, 0, None).get() >= u64::MAX - 0xfff);
        assert_eq!(SessionId::new(0), None);
        assert_eq!(SessionId::new(0x1_2345).unwrap().hint(), 0x2345);
    }

    #[test]
    fn link_keys_depend_on_every_input() {
        let overlay = OverlayKey::from_bytes([3; 32]);
        let (a, b, c) = (name("a"), name("b"), name("c"));
        let s1 = SessionId::new(1).unwrap();
        let s2 = SessionId::new(2).unwrap();
        let (header, payload) = (b"header", b"and payload");
        let seal = |key: &LinkKey, seq| {
            let mut p = *payload;
            let tag = key.seal(seq, header, &mut p);
            (p, tag)
        };
        let key = LinkKey::derive(&overlay, (&a, s1), (&b, Some(s2)));
        let base = seal(&key, 7);
        assert_ne!(&base.0, payload, "the payload is encrypted");
        let variants = [
            LinkKey::derive(&OverlayKey::from_bytes([4; 32]), (&a, s1), (&b, Some(s2))),
            LinkKey::derive(&overlay, (&b, s1), (&a, Some(s2))),
            LinkKey::derive(&overlay, (&a, s2), (&b, Some(s2))),
            LinkKey::derive(&overlay, (&a, s1), (&b, Some(s1))),
            LinkKey::derive(&overlay, (&a, s1), (&b, None)),
            LinkKey::derive(&overlay, (&a, s1), (&c, Some(s2))),
        ];
        for other in &variants {
            assert_ne!(seal(other, 7), base);
        }
        assert_ne!(
            seal(&key, 8),
            base,
            "another sequence number, another nonce"
        );
        let open = |seq, header: &[u8], tag: &[u8]| {
            let mut p = base.0;
            key.open(seq, header, &mut p, tag).then_some(p)
        };
        assert_eq!(open(7, header, &base.1), Some(*payload));
        assert_eq!(open(7, header, &base.1[..15]), None);
        assert_eq!(open(8, header, &base.1), None);
        assert_eq!(open(7, b"headeR", &base.1), None);
        // A MAC of the header alone, as hellos have.
        let tag = key.seal(9, b"hello", &mut []);
        assert!(key.open(9, b"hello", &mut [], &tag));
        assert!(!key.open(9, b"hellO", &mut [], &tag));
    }
}
