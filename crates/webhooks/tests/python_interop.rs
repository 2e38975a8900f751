//! Interop with the Python `svix` (1.62, as `swh-webhooks` pins it) and `standardwebhooks`
//! (1.1) libraries: they verify the signatures we produce, including rotation headers with
//! several signatures, and we verify theirs; a tampered body fails on both sides.
//!
//! Needs `SWITCHYARD_INTEROP_PYTHON`, a Python with both libraries installed; `cargo xtask ci`
//! makes that venv under `target/` and sets the variable. Without it the test prints a notice
//! and checks nothing.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use switchyard_webhooks::{Secret, Signer, SigningSecret, Verifier};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/python_webhooks.py"
);

fn python() -> Option<String> {
    match std::env::var("SWITCHYARD_INTEROP_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            println!(
                "NOTICE: SWITCHYARD_INTEROP_PYTHON is not set; skipping Python webhook interop (cargo xtask ci sets it)"
            );
            None
        }
    }
}

fn run_python(python: &str, cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new(python)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for case in cases {
        writeln!(stdin, "{case}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the Python driver failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

struct Case {
    secret: Secret,
    others: Vec<Secret>,
    id: String,
    body: String,
    tamper: bool,
}

#[test]
fn python_libraries_verify_ours_and_we_verify_theirs() {
    let Some(python) = python() else { return };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let reference: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
    let mut cases = vec![
        Case {
            secret: reference.clone(),
            others: vec![],
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek".into(),
            body: r#"{"test": 2432232314}"#.into(),
            tamper: false,
        },
        Case {
            secret: Secret::from_bytes(&[0xA5; 24]).unwrap(),
            others: vec![],
            id: "msg_2bWgqMTZbJKxRJvlsbgvjpvFbWS".into(),
            body: "{\n  \"origin\": \"https://example.org/ré/\u{1F980}\",\n  \"n\": [1, 2.5e3, null]\n}".into(),
            tamper: false,
        },
        Case {
            secret: Secret::from_bytes(&[0x5A; 64]).unwrap(),
            others: vec![],
            id: "ep_x.y-z".into(),
            body: "{}".into(),
            tamper: false,
        },
        // A rotation: the header carries the current and two previous keys' signatures, and
        // the receiver only knows one of the previous ones.
        Case {
            secret: Secret::generate().unwrap(),
            others: vec![Secret::generate().unwrap(), Secret::generate().unwrap()],
            id: "msg_rotation".into(),
            body: r#"{"rotated":true}"#.into(),
            tamper: false,
        },
        Case {
            secret: Secret::generate().unwrap(),
            others: vec![],
            id: "msg_tampered".into(),
            body: r#"{"amount":100}"#.into(),
            tamper: true,
        },
    ];
    for _ in 0..20 {
        cases.push(Case {
            secret: Secret::generate().unwrap(),
            others: vec![],
            id: format!("msg_{}", cases.len()),
            body: format!(r#"{{"case":{},"text":"a \"quoted\" value"}}"#, cases.len()),
            tamper: false,
        });
    }

    let requests: Vec<Value> = cases
        .iter()
        .map(|case| {
            // Current key first, then older ones; the receiver below holds the last one.
            let mut keys: Vec<SigningSecret> =
                case.others.iter().cloned().map(Into::into).collect();
            keys.push(case.secret.clone().into());
            keys.rotate_right(1);
            let signature = Signer::with_keys(keys).sign(&case.id, now, case.body.as_bytes());
            let receiver_secret = case.others.last().unwrap_or(&case.secret);
            let body = if case.tamper {
                case.body.replace("100", "1000")
            } else {
                case.body.clone()
            };
            json!({
                "secret": receiver_secret.expose(),
                "id": case.id,
                "timestamp": now,
                "body": body,
                "signature": signature,
            })
        })
        .collect();
    let answers = run_python(&python, &requests);
    assert_eq!(answers.len(), cases.len());

    for ((case, request), answer) in cases.iter().zip(&requests).zip(&answers) {
        let expected = !case.tamper;
        assert_eq!(
            answer["svix_verified"], expected,
            "svix on {}: {}",
            case.id, answer["svix_error"]
        );
        assert_eq!(
            answer["std_verified"], expected,
            "standardwebhooks on {}: {}",
            case.id, answer["std_error"]
        );

        // Their signatures, over what they were given, verify here under both header spellings.
        let receiver: Secret = request["secret"].as_str().unwrap().parse().unwrap();
        let body = request["body"].as_str().unwrap();
        for (lib, prefix) in [("svix_signature", "svix"), ("std_signature", "webhook")] {
            let signature = answer[lib].as_str().unwrap();
            let mut headers = HeaderMap::new();
            headers.insert(
                http::HeaderName::try_from(format!("{prefix}-id")).unwrap(),
                HeaderValue::from_str(&case.id).unwrap(),
            );
            headers.insert(
                http::HeaderName::try_from(format!("{prefix}-timestamp")).unwrap(),
                HeaderValue::from(now),
            );
            headers.insert(
                http::HeaderName::try_from(format!("{prefix}-signature")).unwrap(),
                HeaderValue::from_str(signature).unwrap(),
            );
            let verified =
                Verifier::new(receiver.clone()).verify_at(&headers, body.as_bytes(), now);
            assert!(verified.is_ok(), "{lib} for {}: {verified:?}", case.id);
            // And byte for byte the same as ours.
            assert_eq!(
                signature,
                Signer::new(receiver.clone()).sign(&case.id, now, body.as_bytes()),
                "{lib} for {}",
                case.id
            );
        }
    }
}
