//! `deploy/iam-policy.json` lets converged make every AWS call it can make and nothing an
//! abuser of its credentials would want. The policy is evaluated, not read as text: a small
//! IAM evaluator (explicit deny over allow over default deny, wildcard actions and ARNs, the
//! condition operators the policy uses) decides every request the code can send, resource by
//! resource as AWS does, and a list of abuses that must be denied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use converged_aws::operation::{IMPLIED_IAM_ACTIONS, Operation};
use converged_aws::{CLUSTER_TAG, GENERATION_TAG, NAME_TAG, NODE_TAG};

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

#[test]
fn every_sdk_request_is_one_of_the_listed_operations() {
    assert_eq!(
        operations_called(),
        Operation::ALL.into_iter().collect(),
        "every listed operation is called somewhere, and nothing else"
    );
}

/// IAM policy evaluation for one identity policy, limited to what `deploy/iam-policy.json`
/// uses; anything else in a policy is refused loudly rather than misjudged.
mod iam {
    use std::collections::BTreeMap;

    use serde_json::Value;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Effect {
        Allow,
        Deny,
    }

    #[derive(Debug, Clone, Copy)]
    enum Operator {
        /// Some value of the key equals some listed value; a missing key never matches.
        StringEquals,
        /// Every value of the key is listed; a missing key matches (AWS's set semantics).
        ForAllValuesStringEquals,
    }

    #[derive(Debug)]
    struct Condition {
        operator: Operator,
        /// Lowercase: condition key names are case-insensitive.
        key: String,
        values: Vec<String>,
    }

    #[derive(Debug)]
    pub struct Statement {
        pub sid: String,
        effect: Effect,
        pub actions: Vec<String>,
        pub resources: Vec<String>,
        conditions: Vec<Condition>,
    }

    #[derive(Debug)]
    pub struct Policy {
        pub statements: Vec<Statement>,
    }

    /// The condition keys of one resource of a request, e.g. `aws:RequestTag/converged:cluster`.
    #[derive(Debug, Clone, Default)]
    pub struct Context {
        keys: BTreeMap<String, Vec<String>>,
    }

    impl Context {
        pub fn with(mut self, key: &str, value: &str) -> Self {
            self.keys
                .entry(key.to_ascii_lowercase())
                .or_default()
                .push(value.to_owned());
            self
        }

        fn get(&self, key: &str) -> Option<&[String]> {
            self.keys.get(key).map(Vec::as_slice)
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Decision {
        /// Allowed by the statements named (all that matched).
        Allow(Vec<String>),
        ImplicitDeny,
        ExplicitDeny(String),
    }

    fn strings(value: &Value, what: &str) -> Vec<String> {
        match value {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many
                .iter()
                .map(|v| {
                    v.as_str()
                        .unwrap_or_else(|| panic!("{what}: {v} is not a string"))
                        .to_owned()
                })
                .collect(),
            other => panic!("{what}: {other} is neither a string nor a list"),
        }
    }

    impl Policy {
        pub fn parse(text: &str) -> Policy {
            let document: Value = serde_json::from_str(text).expect("the policy is JSON");
            assert_eq!(document["Version"], "2012-10-17");
            let statements = match &document["Statement"] {
                Value::Array(list) => list.iter().map(Statement::parse).collect(),
                one @ Value::Object(_) => vec![Statement::parse(one)],
                other => panic!("Statement: {other}"),
            };
            Policy { statements }
        }

        /// AWS's evaluation for an identity policy alone: an explicit deny wins, then any
        /// allow, else the request is denied by default.
        pub fn decide(&self, action: &str, resource: &str, context: &Context) -> Decision {
            let mut allowed_by = Vec::new();
            for statement in &self.statements {
                if statement.applies(action, resource, context) {
                    match statement.effect {
                        Effect::Deny => return Decision::ExplicitDeny(statement.sid.clone()),
                        Effect::Allow => allowed_by.push(statement.sid.clone()),
                    }
                }
            }
            if allowed_by.is_empty() {
                Decision::ImplicitDeny
            } else {
                Decision::Allow(allowed_by)
            }
        }
    }

    impl Statement {
        fn parse(value: &Value) -> Statement {
            let object = value.as_object().expect("a statement is an object");
            for key in object.keys() {
                assert!(
                    ["Sid", "Effect", "Action", "Resource", "Condition"].contains(&key.as_str()),
                    "the evaluator does not model `{key}`: extend it before the policy uses it"
                );
            }
            let sid = object["Sid"].as_str().expect("every statement has a Sid");
            let effect = match object["Effect"].as_str() {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                other => panic!("{sid}: Effect {other:?}"),
            };
            let mut conditions = Vec::new();
            if let Some(block) = object.get("Condition") {
                for (operator, keys) in block.as_object().expect("Condition is an object") {
                    let operator = match operator.as_str() {
                        "StringEquals" => Operator::StringEquals,
                        "ForAllValues:StringEquals" => Operator::ForAllValuesStringEquals,
                        other => panic!(
                            "{sid}: the evaluator does not model the operator {other}: extend it first"
                        ),
                    };
                    for (key, values) in keys.as_object().expect("an operator maps keys") {
                        conditions.push(Condition {
                            operator,
                            key: key.to_ascii_lowercase(),
                            values: strings(values, sid),
                        });
                    }
                }
            }
            Statement {
                sid: sid.to_owned(),
                effect,
                actions: strings(&object["Action"], sid),
                resources: strings(&object["Resource"], sid),
                conditions,
            }
        }

        fn applies(&self, action: &str, resource: &str, context: &Context) -> bool {
            self.actions.iter().any(|pattern| {
                wildcard(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
            }) && self
                .resources
                .iter()
                .any(|pattern| wildcard(pattern, resource))
                && self.conditions.iter().all(|c| c.holds(context))
        }
    }

    impl Condition {
        fn holds(&self, context: &Context) -> bool {
            let found = context.get(&self.key);
            match self.operator {
                Operator::StringEquals => {
                    found.is_some_and(|values| values.iter().any(|v| self.values.contains(v)))
                }
                Operator::ForAllValuesStringEquals => found
                    .unwrap_or_default()
                    .iter()
                    .all(|v| self.values.contains(v)),
            }
        }
    }

    /// IAM's glob: `*` matches any run of characters (`/` and `:` included), `?` one.
    pub fn wildcard(pattern: &str, text: &str) -> bool {
        let pattern: Vec<char> = pattern.chars().collect();
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(&c) if c == '?' || c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        p = star_p + 1;
                        t = star_t + 1;
                        star = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

use iam::{Context, Decision, Policy};

#[test]
fn the_evaluator_follows_iam_semantics() {
    assert!(iam::wildcard(
        "arn:aws:ec2:*:*:instance/*",
        "arn:aws:ec2:eu-west-1:1:instance/i-1"
    ));
    assert!(iam::wildcard(
        "arn:aws:ec2:*::image/*",
        "arn:aws:ec2:eu-west-1::image/ami-1"
    ));
    assert!(!iam::wildcard(
        "arn:aws:ec2:*::image/*",
        "arn:aws:ec2:eu-west-1:1:image/ami-1"
    ));
    assert!(iam::wildcard("*", "arn:aws:route53:::hostedzone/Z1"));
    assert!(iam::wildcard("ec2:Describe*", "ec2:DescribeInstances"));
    assert!(iam::wildcard("hostedzone/Z?", "hostedzone/Z1"));
    assert!(!iam::wildcard("hostedzone/Z?", "hostedzone/Z12"));
    assert!(!iam::wildcard("hostedzone/Z1", "hostedzone/Z12"));
    assert!(iam::wildcard("a*b*c", "axxbyyc"));
    assert!(!iam::wildcard("a*b*c", "axxbyy"));

    let policy = Policy::parse(
        r#"{"Version": "2012-10-17", "Statement": [
            {"Sid": "All", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {"Sid": "NoTerminate", "Effect": "Deny", "Action": "ec2:TerminateInstances",
             "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/keep": ["yes", "true"]}}},
            {"Sid": "Tagged", "Effect": "Allow", "Action": "route53:GetChange", "Resource": "*",
             "Condition": {"StringEquals": {"aws:RequestTag/a": "1", "aws:RequestTag/b": "2"},
                           "ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}}
        ]}"#,
    );
    let none = Context::default();
    let kept = Context::default().with("aws:ResourceTag/keep", "true");
    assert_eq!(
        policy.decide("EC2:terminateinstances", "arn:x", &none),
        Decision::Allow(vec!["All".into()]),
        "actions match case-insensitively; a condition on a missing key does not hold"
    );
    assert_eq!(
        policy.decide("ec2:TerminateInstances", "arn:x", &kept),
        Decision::ExplicitDeny("NoTerminate".into()),
        "an explicit deny overrides an allow; any listed value matches"
    );
    assert_eq!(
        policy.decide("s3:GetObject", "arn:x", &none),
        Decision::ImplicitDeny
    );
    let both = Context::default()
        .with("AWS:RequestTag/a", "1")
        .with("aws:requesttag/b", "2")
        .with("aws:TagKeys", "a")
        .with("aws:TagKeys", "b");
    assert!(matches!(
        policy.decide("route53:GetChange", "c", &both),
        Decision::Allow(_)
    ));
    let one = Context::default()
        .with("aws:RequestTag/a", "1")
        .with("aws:TagKeys", "a");
    assert_eq!(
        policy.decide("route53:GetChange", "c", &one),
        Decision::ImplicitDeny,
        "keys under one operator must all hold"
    );
    let extra = both.clone().with("aws:TagKeys", "c");
    assert_eq!(
        policy.decide("route53:GetChange", "c", &extra),
        Decision::ImplicitDeny,
        "ForAllValues: every value must be listed"
    );
    let no_keys = Context::default()
        .with("aws:RequestTag/a", "1")
        .with("aws:RequestTag/b", "2");
    assert!(
        matches!(
            policy.decide("route53:GetChange", "c", &no_keys),
            Decision::Allow(_)
        ),
        "ForAllValues holds on a missing key"
    );
}

const CLUSTER: &str = "clickcount";
const OTHER_CLUSTER: &str = "billing";
const ZONE_ID: &str = "Z0CLICKCOUNT";
const OTHER_ZONE_ID: &str = "Z0PAYROLL";
const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

/// The policy as an operator deploys it: placeholders replaced.
fn deployed_policy() -> Policy {
    let text = std::fs::read_to_string(root().join("../../deploy/iam-policy.json")).unwrap();
    for placeholder in ["CLUSTER_NAME", "ZONE_ID"] {
        assert!(text.contains(placeholder), "the policy uses {placeholder}");
    }
    Policy::parse(
        &text
            .replace("CLUSTER_NAME", CLUSTER)
            .replace("ZONE_ID", ZONE_ID),
    )
}

fn ec2_arn(resource: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:{resource}")
}

/// One resource a request touches, with the condition keys AWS sets for it.
#[derive(Clone)]
struct Resource {
    arn: String,
    context: Context,
}

impl Resource {
    fn any() -> Resource {
        Resource {
            arn: "*".into(),
            context: Context::default(),
        }
    }

    fn plain(arn: String) -> Resource {
        Resource {
            arn,
            context: Context::default(),
        }
    }

    /// An existing resource carrying `tags` (EC2 sets both tag key families).
    fn existing(arn: String, tags: &[(&str, &str)]) -> Resource {
        let mut context = Context::default();
        for (key, value) in tags {
            context = context
                .with(&format!("aws:ResourceTag/{key}"), value)
                .with(&format!("ec2:ResourceTag/{key}"), value);
        }
        Resource { arn, context }
    }

    /// A resource the request creates, tagged with `tags` in its TagSpecifications.
    fn created(arn: String, tags: &[(&str, &str)]) -> Resource {
        let mut context = Context::default();
        for (key, value) in tags {
            context = context
                .with(&format!("aws:RequestTag/{key}"), value)
                .with("aws:TagKeys", key);
        }
        Resource { arn, context }
    }
}

/// One AWS request: every (action, resource) pair IAM authorizes for it. It is allowed only if
/// every pair is.
struct Request {
    what: String,
    authorizations: Vec<(String, Resource)>,
}

impl Request {
    fn new(what: impl Into<String>) -> Request {
        Request {
            what: what.into(),
            authorizations: Vec::new(),
        }
    }

    fn on(mut self, action: &str, resource: Resource) -> Request {
        self.authorizations.push((action.to_owned(), resource));
        self
    }

    /// Tags given at creation are authorized as `ec2:CreateTags` on each tagged resource.
    fn tagging(self, created_by: Operation, resource: &Resource) -> Request {
        let mut tagged = resource.clone();
        tagged.context = tagged.context.with("ec2:CreateAction", created_by.name());
        self.on(IMPLIED_IAM_ACTIONS[0], tagged)
    }

    /// The first refusal, if any.
    fn refusal(&self, policy: &Policy) -> Option<String> {
        self.authorizations.iter().find_map(|(action, resource)| {
            match policy.decide(action, &resource.arn, &resource.context) {
                Decision::Allow(_) => None,
                denied => Some(format!("{action} on {}: {denied:?}", resource.arn)),
            }
        })
    }
}

fn instance_tags(cluster: &str) -> Vec<(&'static str, String)> {
    vec![
        (NAME_TAG, format!("{cluster}-mesos-1")),
        (CLUSTER_TAG, cluster.to_owned()),
        (NODE_TAG, "mesos-1".to_owned()),
        (GENERATION_TAG, "0".to_owned()),
    ]
}

fn borrowed<'a>(tags: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    tags.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn ours() -> Vec<(&'static str, String)> {
    vec![(CLUSTER_TAG, CLUSTER.to_owned())]
}

fn theirs() -> Vec<(&'static str, String)> {
    vec![(CLUSTER_TAG, OTHER_CLUSTER.to_owned())]
}

fn instance(id: &str, tags: &[(&'static str, String)]) -> Resource {
    Resource::existing(ec2_arn(&format!("instance/{id}")), &borrowed(tags))
}

fn group(id: &str, tags: &[(&'static str, String)]) -> Resource {
    Resource::existing(ec2_arn(&format!("security-group/{id}")), &borrowed(tags))
}

/// RunInstances as `Ec2Instances::launch` sends it: a new instance and root volume tagged
/// alike, a new primary network interface (untagged) in the subnet, the existing group, the
/// image and, when configured, the key pair.
fn run_instances(
    what: &str,
    instance_tags: &[(&'static str, String)],
    volume_tags: &[(&'static str, String)],
    into_group: Resource,
    key_pair: bool,
) -> Request {
    let run = Operation::RunInstances;
    let action = run.iam_action();
    let new_instance = Resource::created(ec2_arn("instance/*"), &borrowed(instance_tags));
    let new_volume = Resource::created(ec2_arn("volume/*"), &borrowed(volume_tags));
    let mut request = Request::new(format!("RunInstances {what}"))
        .on(&action, new_instance.clone())
        .on(&action, new_volume.clone())
        .on(&action, Resource::plain(ec2_arn("network-interface/*")))
        .on(&action, Resource::plain(ec2_arn("subnet/subnet-0a1b")))
        .on(&action, into_group)
        .on(
            &action,
            Resource::plain(format!("arn:aws:ec2:{REGION}::image/ami-0c0ffee")),
        );
    if key_pair {
        request = request.on(
            &action,
            Resource::plain(ec2_arn("key-pair/clickcount-admin")),
        );
    }
    if !instance_tags.is_empty() {
        request = request.tagging(run, &new_instance);
    }
    if !volume_tags.is_empty() {
        request = request.tagging(run, &new_volume);
    }
    request
}

/// CreateSecurityGroup as `Ec2SecurityGroups::create_group` sends it, in an existing VPC.
fn create_security_group(what: &str, tags: &[(&'static str, String)]) -> Request {
    let create = Operation::CreateSecurityGroup;
    let new_group = Resource::created(ec2_arn("security-group/*"), &borrowed(tags));
    let request = Request::new(format!("CreateSecurityGroup {what}"))
        .on(&create.iam_action(), new_group.clone())
        .on(
            &create.iam_action(),
            Resource::plain(ec2_arn("vpc/vpc-0a1b")),
        );
    if tags.is_empty() {
        request
    } else {
        request.tagging(create, &new_group)
    }
}

fn on_one(operation: Operation, resource: Resource) -> Request {
    Request::new(format!("{} on {}", operation.name(), resource.arn))
        .on(&operation.iam_action(), resource)
}

fn zone(id: &str) -> Resource {
    Resource::plain(format!("arn:aws:route53:::hostedzone/{id}"))
}

/// Every request the code sends, with the context it really has, by operation.
fn intended_requests() -> Vec<(Operation, Request)> {
    let group_tags = vec![
        (CLUSTER_TAG, CLUSTER.to_owned()),
        (NAME_TAG, "clickcount-nodes".to_owned()),
    ];
    let ours_group = || group("sg-0a1b", &ours());
    let ours_instance = || instance("i-0a1b", &instance_tags(CLUSTER));
    let mut requests = Vec::new();
    for operation in [
        Operation::DescribeSecurityGroups,
        Operation::DescribeInstances,
        Operation::DescribeImages,
        Operation::DescribeVolumes,
        Operation::ListHostedZonesByName,
    ] {
        requests.push((operation, on_one(operation, Resource::any())));
    }
    requests.push((
        Operation::CreateSecurityGroup,
        create_security_group("tagged as ours", &group_tags),
    ));
    for operation in [
        Operation::AuthorizeSecurityGroupIngress,
        Operation::AuthorizeSecurityGroupEgress,
        Operation::RevokeSecurityGroupIngress,
        Operation::RevokeSecurityGroupEgress,
        Operation::DeleteSecurityGroup,
    ] {
        requests.push((operation, on_one(operation, ours_group())));
    }
    for key_pair in [true, false] {
        requests.push((
            Operation::RunInstances,
            run_instances(
                &format!("as launch sends it (key pair {key_pair})"),
                &instance_tags(CLUSTER),
                &instance_tags(CLUSTER),
                ours_group(),
                key_pair,
            ),
        ));
    }
    for operation in [
        Operation::StopInstances,
        Operation::ModifyInstanceAttribute,
        Operation::StartInstances,
        Operation::TerminateInstances,
    ] {
        requests.push((operation, on_one(operation, ours_instance())));
    }
    let terminate = Operation::TerminateInstances;
    requests.push((
        terminate,
        Request::new("TerminateInstances of two of ours")
            .on(&terminate.iam_action(), ours_instance())
            .on(
                &terminate.iam_action(),
                instance("i-0c0d", &instance_tags(CLUSTER)),
            ),
    ));
    for operation in [
        Operation::ListResourceRecordSets,
        Operation::ChangeResourceRecordSets,
    ] {
        requests.push((operation, on_one(operation, zone(ZONE_ID))));
    }
    requests.push((
        Operation::GetChange,
        on_one(
            Operation::GetChange,
            Resource::plain("arn:aws:route53:::change/C2682N5HXP0BZ4".into()),
        ),
    ));
    requests
}

/// What someone holding converged's credentials must not be able to do.
fn abuses() -> Vec<Request> {
    let foreign_group = || group("sg-0f0f", &[]);
    let ours_instance = || instance("i-0a1b", &instance_tags(CLUSTER));
    let untagged_instance = || instance("i-0f0f", &[]);
    let ec2 = |operation: Operation| operation.iam_action();
    let with_extra_tag = {
        let mut tags = instance_tags(CLUSTER);
        tags.push(("Role", "admin".to_owned()));
        tags
    };
    let mut abuses = vec![
        create_security_group("untagged", &[]),
        create_security_group(
            "with a Name but no cluster tag",
            &[(NAME_TAG, "sneaky".to_owned())],
        ),
        create_security_group("tagged as another cluster's", &theirs()),
        run_instances("untagged", &[], &[], group("sg-0a1b", &ours()), true),
        run_instances(
            "with an untagged volume",
            &instance_tags(CLUSTER),
            &[],
            group("sg-0a1b", &ours()),
            true,
        ),
        run_instances(
            "tagged as another cluster's",
            &instance_tags(OTHER_CLUSTER),
            &instance_tags(OTHER_CLUSTER),
            group("sg-0a1b", &ours()),
            true,
        ),
        run_instances(
            "into an untagged group",
            &instance_tags(CLUSTER),
            &instance_tags(CLUSTER),
            foreign_group(),
            true,
        ),
        run_instances(
            "into another cluster's group",
            &instance_tags(CLUSTER),
            &instance_tags(CLUSTER),
            group("sg-0b0b", &theirs()),
            false,
        ),
        run_instances(
            "with a tag key converged does not set",
            &with_extra_tag,
            &instance_tags(CLUSTER),
            group("sg-0a1b", &ours()),
            false,
        ),
        Request::new("TerminateInstances of ours and an untagged one")
            .on(&ec2(Operation::TerminateInstances), ours_instance())
            .on(&ec2(Operation::TerminateInstances), untagged_instance()),
        Request::new("ModifyInstanceAttribute moving ours into a foreign group")
            .on(&ec2(Operation::ModifyInstanceAttribute), ours_instance())
            .on(&ec2(Operation::ModifyInstanceAttribute), foreign_group()),
        on_one(
            Operation::ModifyInstanceAttribute,
            group("sg-0a1b", &ours()),
        ),
        on_one(
            Operation::StopInstances,
            Resource::plain(ec2_arn("security-group/sg-0a1b")),
        ),
    ];
    for operation in [
        Operation::StopInstances,
        Operation::StartInstances,
        Operation::ModifyInstanceAttribute,
        Operation::TerminateInstances,
    ] {
        abuses.push(on_one(operation, untagged_instance()));
        abuses.push(on_one(
            operation,
            instance("i-0b0b", &instance_tags(OTHER_CLUSTER)),
        ));
    }
    for operation in [
        Operation::AuthorizeSecurityGroupIngress,
        Operation::AuthorizeSecurityGroupEgress,
        Operation::RevokeSecurityGroupIngress,
        Operation::RevokeSecurityGroupEgress,
        Operation::DeleteSecurityGroup,
    ] {
        abuses.push(on_one(operation, foreign_group()));
        abuses.push(on_one(operation, group("sg-0b0b", &theirs())));
    }
    // Tagging outside creation: re-labelling a foreign resource as the cluster's, or ours as
    // another's.
    let retag = |resource: Resource, cluster: &str| {
        let mut tagged = resource.clone();
        tagged.context = tagged
            .context
            .with(&format!("aws:RequestTag/{CLUSTER_TAG}"), cluster)
            .with("aws:TagKeys", CLUSTER_TAG);
        Request::new(format!(
            "CreateTags {CLUSTER_TAG}={cluster} on {}",
            resource.arn
        ))
        .on(IMPLIED_IAM_ACTIONS[0], tagged)
    };
    abuses.push(retag(untagged_instance(), CLUSTER));
    abuses.push(retag(foreign_group(), CLUSTER));
    abuses.push(retag(ours_instance(), OTHER_CLUSTER));
    abuses.push(retag(
        Resource::existing(ec2_arn("volume/vol-0f0f"), &[]),
        CLUSTER,
    ));
    abuses.push(
        Request::new("CreateTags while creating a volume").on(
            IMPLIED_IAM_ACTIONS[0],
            Resource {
                arn: ec2_arn("volume/*"),
                context: Context::default()
                    .with("ec2:CreateAction", "CreateVolume")
                    .with(&format!("aws:RequestTag/{CLUSTER_TAG}"), CLUSTER)
                    .with("aws:TagKeys", CLUSTER_TAG),
            },
        ),
    );
    for operation in [
        Operation::ListResourceRecordSets,
        Operation::ChangeResourceRecordSets,
    ] {
        abuses.push(on_one(operation, zone(OTHER_ZONE_ID)));
        abuses.push(on_one(operation, zone(&format!("{ZONE_ID}X"))));
    }
    for action in [
        "ec2:DeleteTags",
        "ec2:CreateVolume",
        "ec2:DeleteVolume",
        "ec2:DetachVolume",
        "ec2:CreateKeyPair",
        "ec2:ModifySecurityGroupRules",
        "route53:DeleteHostedZone",
        "route53:CreateHostedZone",
        "iam:PassRole",
    ] {
        abuses.push(
            Request::new(format!("{action} on anything")).on(action, Resource::plain("*".into())),
        );
    }
    abuses.push(Request::new("DeleteTags on ours").on("ec2:DeleteTags", ours_instance()));
    abuses
}

fn policy_actions(policy: &Policy) -> BTreeSet<String> {
    let actions: BTreeSet<String> = policy
        .statements
        .iter()
        .flat_map(|s| s.actions.iter().cloned())
        .collect();
    for action in &actions {
        assert!(!action.contains('*'), "no wildcard actions: {action}");
    }
    actions
}

#[test]
fn the_policy_allows_every_call_the_code_makes_and_denies_the_abuses() {
    let policy = deployed_policy();
    let intended = intended_requests();

    let covered: BTreeSet<Operation> = intended.iter().map(|(op, _)| *op).collect();
    assert_eq!(
        covered,
        Operation::ALL.into_iter().collect(),
        "every operation the code can call has its request here"
    );
    let mut wanted: BTreeSet<String> = Operation::ALL.iter().map(|op| op.iam_action()).collect();
    wanted.extend(IMPLIED_IAM_ACTIONS.iter().map(|a| (*a).to_owned()));
    assert_eq!(
        policy_actions(&policy),
        wanted,
        "the policy names exactly the operations' actions"
    );

    let mut wrong = Vec::new();
    // What each statement was needed for: (action, resource ARN) pairs it allowed.
    let mut used: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (_, request) in &intended {
        if let Some(refusal) = request.refusal(&policy) {
            wrong.push(format!(
                "denied, but the code needs it: {}: {refusal}",
                request.what
            ));
        }
        for (action, resource) in &request.authorizations {
            if let Decision::Allow(sids) = policy.decide(action, &resource.arn, &resource.context) {
                for sid in sids {
                    used.entry(sid)
                        .or_default()
                        .push((action.clone(), resource.arn.clone()));
                }
            }
        }
    }
    let abuses = abuses();
    for abuse in &abuses {
        if abuse.refusal(&policy).is_none() {
            wrong.push(format!("allowed, but must be denied: {}", abuse.what));
        }
    }
    // A grant no request needs is a grant too many: every action on every resource of every
    // statement is needed by some call.
    for statement in &policy.statements {
        let needed = used.get(&statement.sid).map_or(&[][..], Vec::as_slice);
        for action in &statement.actions {
            for pattern in &statement.resources {
                if !needed
                    .iter()
                    .any(|(a, arn)| a.eq_ignore_ascii_case(action) && iam::wildcard(pattern, arn))
                {
                    wrong.push(format!(
                        "granted, but no call needs it: {}: {action} on {pattern}",
                        statement.sid
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!(
        "iam: {} calls allowed as intended, {} abuses denied",
        intended.len(),
        abuses.len()
    );
}
