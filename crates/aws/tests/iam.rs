//! `deploy/iam-policy.json` allows exactly the AWS operations the code can call: every SDK
//! request in `src/` goes through `AwsContext::call` with an `Operation` whose SDK method it
//! invokes, and the policy's actions are those operations plus tagging at creation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use converged_aws::operation::{IMPLIED_IAM_ACTIONS, Operation};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

fn sources(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path, text));
        }
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The operations the sources send, checking on the way that every `.send()` belongs to a
/// `.call(Operation::X, …)` whose closure invokes X's SDK method.
fn operations_called() -> BTreeSet<Operation> {
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    let mut called = BTreeSet::new();
    for (path, text) in files {
        let sends = text.matches(".send()").count();
        let calls: Vec<&str> = text.split(".call(Operation::").skip(1).collect();
        assert_eq!(
            sends,
            calls.len(),
            "{}: every SDK request must go through AwsContext::call",
            path.display()
        );
        for rest in calls {
            let name: String = rest
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            let operation = Operation::from_name(&name)
                .unwrap_or_else(|| panic!("{}: unknown operation {name}", path.display()));
            let closure = &rest[..rest.find(".send()").unwrap()];
            assert!(
                closure.contains(&format!(".{}()", snake(&name))),
                "{}: the call labelled {name} must invoke .{}()",
                path.display(),
                snake(&name)
            );
            called.insert(operation);
        }
    }
    called
}

fn policy_actions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("../../deploy/iam-policy.json")).unwrap();
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut actions = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            serde_json::Value::String(action) => {
                actions.insert(action.clone());
            }
            serde_json::Value::Array(list) => {
                actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned()));
            }
            other => panic!("unexpected Action {other}"),
        }
        assert!(
            !statement["Action"].to_string().contains('*'),
            "no wildcard actions"
        );
    }
    actions
}

#[test]
fn the_policy_allows_exactly_what_the_code_calls() {
    let called = operations_called();
    assert_eq!(
        called,
        Operation::ALL.into_iter().collect(),
        "every listed operation is called somewhere, and nothing else"
    );
    let mut wanted: BTreeSet<String> = called.iter().map(|op| op.iam_action()).collect();
    wanted.extend(IMPLIED_IAM_ACTIONS.iter().map(|a| (*a).to_owned()));
    assert_eq!(policy_actions(), wanted);
}

#[test]
fn mutations_are_conditioned_on_the_cluster_tag_and_records_on_the_zone() {
    let text = std::fs::read_to_string(root().join("../../deploy/iam-policy.json")).unwrap();
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    for statement in policy["Statement"].as_array().unwrap() {
        let actions = statement["Action"].to_string();
        let condition = statement["Condition"].to_string();
        if actions.contains("TerminateInstances") || actions.contains("RevokeSecurityGroupIngress")
        {
            assert!(
                condition.contains("aws:ResourceTag/converged:cluster"),
                "{statement}"
            );
        }
        if actions.contains("ChangeResourceRecordSets") {
            assert_eq!(
                statement["Resource"],
                "arn:aws:route53:::hostedzone/ZONE_ID"
            );
        }
        if actions.contains("CreateTags") {
            assert!(condition.contains("ec2:CreateAction"), "{statement}");
        }
    }
}
