//! Property tests: signing then verifying is the identity for any id, timestamp and body;
//! any change to the signed parts is caught; verification never panics on arbitrary headers.
#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use switchyard_webhooks::{Secret, Signer, Verifier};

fn secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), 24..=64)
        .prop_map(|bytes| Secret::from_bytes(&bytes).unwrap())
}

proptest! {
    #[test]
    fn sign_then_verify(
        secret in secret(),
        id in "[a-zA-Z0-9_.-]{1,40}",
        timestamp in 0i64..4_000_000_000,
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let headers = Signer::new(secret.clone()).headers(&id, timestamp, &body);
        let verified = Verifier::new(secret).verify_at(&headers, &body, timestamp).unwrap();
        prop_assert_eq!(verified.id, id);
        prop_assert_eq!(verified.timestamp, timestamp);
    }

    #[test]
    fn any_flipped_bit_is_caught(
        secret in secret(),
        body in prop::collection::vec(any::<u8>(), 1..512),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let headers = Signer::new(secret.clone()).headers("msg_1", 1_700_000_000, &body);
        let mut tampered = body.clone();
        let i = flip.index(tampered.len());
        tampered[i] ^= 1 << bit;
        prop_assert!(Verifier::new(secret).verify_at(&headers, &tampered, 1_700_000_000).is_err());
    }

    #[test]
    fn arbitrary_headers_never_panic(
        values in prop::collection::vec(("(webhook|svix)-(id|timestamp|signature)", "[ -~]{0,120}"), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in values {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(HeaderName::try_from(name).unwrap(), value);
            }
        }
        let _ = Verifier::new(Secret::from_bytes(&[1; 32]).unwrap()).verify_at(&headers, &body, 1_700_000_000);
    }
}
