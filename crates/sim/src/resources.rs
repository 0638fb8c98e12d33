//! Mesos resources and attributes: the agent flag syntax, accounting, and the master's JSON shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;

/// The default role, `*`.
pub const DEFAULT_ROLE: &str = "*";

/// A set of inclusive port ranges, kept sorted and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges(pub Vec<(u32, u32)>);

impl Ranges {
    fn normalize(mut v: Vec<(u32, u32)>) -> Self {
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (b, e) in v {
            match out.last_mut() {
                Some(last) if b <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => out.push((b, e)),
            }
        }
        Self(out)
    }

    /// Whether `port` lies in one of the ranges.
    pub fn contains(&self, port: u32) -> bool {
        self.0.iter().any(|&(b, e)| b <= port && port <= e)
    }

    /// The ranges with `ports` taken out.
    pub fn without(&self, ports: &[u32]) -> Self {
        let mut out = Vec::new();
        for &(b, e) in &self.0 {
            let mut start = b;
            let mut cut: Vec<u32> = ports
                .iter()
                .copied()
                .filter(|p| b <= *p && *p <= e)
                .collect();
            cut.sort_unstable();
            cut.dedup();
            for p in cut {
                if p > start {
                    out.push((start, p - 1));
                }
                start = p + 1;
            }
            if start <= e {
                out.push((start, e));
            }
        }
        Self(out)
    }

    /// The ranges with `port` added.
    pub fn plus_port(&self, port: u32) -> Self {
        let mut all = self.0.clone();
        all.push((port, port));
        Self::normalize(all)
    }

    /// A uniformly random port of the ranges, if any.
    pub fn random(&self) -> Option<u32> {
        let total: u64 = self.0.iter().map(|&(b, e)| u64::from(e - b) + 1).sum();
        if total == 0 {
            return None;
        }
        let mut n = rand::random_range(0..total);
        for &(b, e) in &self.0 {
            let len = u64::from(e - b) + 1;
            if n < len {
                return Some(b + n as u32);
            }
            n -= len;
        }
        None
    }

    /// Mesos' string form: `[31000-31902, 31904-32000]` [`MES@HEAD:src/common/values.cpp:406-417`].
    pub fn to_mesos_string(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(b, e)| format!("{b}-{e}")).collect();
        format!("[{}]", parts.join(", "))
    }

    fn parse(input: &str) -> Result<Self, String> {
        let inner = input
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or("ranges must look like [a-b, c-d]")?;
        let mut v = Vec::new();
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (b, e) = part.split_once('-').ok_or("a range must look like a-b")?;
            let b: u32 = b
                .trim()
                .parse()
                .map_err(|_| "range bound is not a number")?;
            let e: u32 = e
                .trim()
                .parse()
                .map_err(|_| "range bound is not a number")?;
            if b > e {
                return Err("range begin is after its end".into());
            }
            v.push((b, e));
        }
        Ok(Self::normalize(v))
    }
}

/// Resources of one role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// CPUs.
    pub cpus: f64,
    /// Memory in MiB.
    pub mem: f64,
    /// Disk in MiB.
    pub disk: f64,
    /// Port ranges.
    pub ports: Ranges,
}

impl Bundle {
    /// The master's JSON for a Resources object: scalars always present, ports as a range string
    /// [`MES@HEAD:src/common/http.cpp#json(ResourceIterable):1014-1048`; 0.28 has no `gpus`].
    pub fn to_json(&self, with_gpus: bool) -> Value {
        let mut m = Map::new();
        m.insert("cpus".into(), json!(self.cpus));
        m.insert("disk".into(), json!(self.disk));
        if with_gpus {
            m.insert("gpus".into(), json!(0.0));
        }
        m.insert("mem".into(), json!(self.mem));
        if !self.ports.0.is_empty() {
            m.insert("ports".into(), json!(self.ports.to_mesos_string()));
        }
        Value::Object(m)
    }

    /// Sum of two bundles.
    pub fn plus(&self, other: &Bundle) -> Bundle {
        let mut ports = self.ports.0.clone();
        ports.extend(other.ports.0.iter().copied());
        Bundle {
            cpus: self.cpus + other.cpus,
            mem: self.mem + other.mem,
            disk: self.disk + other.disk,
            ports: Ranges::normalize(ports),
        }
    }

    /// What is left of this bundle once `used` is taken out of it.
    pub fn minus(&self, used: &Bundle) -> Bundle {
        let used_ports: Vec<u32> = used.ports.0.iter().flat_map(|&(b, e)| b..=e).collect();
        Bundle {
            cpus: self.cpus - used.cpus,
            mem: self.mem - used.mem,
            disk: self.disk - used.disk,
            ports: self.ports.without(&used_ports),
        }
    }
}

/// An agent's resources, by role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources(pub BTreeMap<String, Bundle>);

impl Resources {
    /// Parses the agent's `--resources` flag: `cpus:1;mem:497;disk:20000;ports:[31000-32000]`,
    /// with an optional role as in `cpus(slave_public):1`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::Parse {
            what: "resources",
            input: input.to_string(),
            reason,
        };
        let mut out: BTreeMap<String, Bundle> = BTreeMap::new();
        for item in input.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once(':')
                .ok_or_else(|| err(format!("{item:?} is not name:value")))?;
            let (name, role) = match key.split_once('(') {
                Some((n, r)) => (
                    n,
                    r.strip_suffix(')')
                        .ok_or_else(|| err(format!("unclosed role in {key:?}")))?,
                ),
                None => (key, DEFAULT_ROLE),
            };
            let bundle = out.entry(role.to_string()).or_default();
            let scalar = || {
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| err(format!("{name} needs a number")))
            };
            match name.trim() {
                "cpus" => bundle.cpus += scalar()?,
                "mem" => bundle.mem += scalar()?,
                "disk" => bundle.disk += scalar()?,
                "ports" => {
                    let r = Ranges::parse(value).map_err(&err)?;
                    let mut all = bundle.ports.0.clone();
                    all.extend(r.0);
                    bundle.ports = Ranges::normalize(all);
                }
                other => return Err(err(format!("unsupported resource {other:?}"))),
            }
        }
        Ok(Self(out))
    }

    /// All roles together.
    pub fn total(&self) -> Bundle {
        self.0
            .values()
            .fold(Bundle::default(), |acc, b| acc.plus(b))
    }
}

/// An agent attribute value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AttrValue {
    /// A TEXT attribute.
    Text(String),
    /// A SCALAR attribute.
    Scalar(f64),
}

impl AttrValue {
    /// The value as Marathon's constraint matcher sees it.
    pub fn as_text(&self) -> String {
        match self {
            AttrValue::Text(s) => s.clone(),
            AttrValue::Scalar(f) => format!("{f}"),
        }
    }
}

/// Parses the agent's `--attributes` flag: `env:staging;rack:r1`. A value that parses as a number is a
/// SCALAR, as in Mesos; everything else is TEXT.
pub fn parse_attributes(input: &str) -> Result<BTreeMap<String, AttrValue>, Error> {
    let mut out = BTreeMap::new();
    for item in input.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once(':').ok_or_else(|| Error::Parse {
            what: "attributes",
            input: input.to_string(),
            reason: format!("{item:?} is not name:value"),
        })?;
        let value = match v.trim().parse::<f64>() {
            Ok(f) => AttrValue::Scalar(f),
            Err(_) => AttrValue::Text(v.trim().to_string()),
        };
        out.insert(k.trim().to_string(), value);
    }
    Ok(out)
}

/// The master's JSON for attributes [`MES@HEAD:src/common/http.cpp#json(Attributes):807-828`].
pub fn attributes_json(attrs: &BTreeMap<String, AttrValue>) -> Value {
    let m: Map<String, Value> = attrs
        .iter()
        .map(|(k, v)| {
            let v = match v {
                AttrValue::Text(s) => json!(s),
                AttrValue::Scalar(f) => json!(f),
            };
            (k.clone(), v)
        })
        .collect();
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_agent_flag_with_roles_and_ranges() {
        let r = Resources::parse(
            "cpus:1;mem:497;disk:20000;ports:[31000-32000];cpus(slave_public):2;ports(slave_public):[80-80, 443-443]",
        )
        .unwrap();
        let star = &r.0["*"];
        assert_eq!(star.cpus, 1.0);
        assert_eq!(star.mem, 497.0);
        assert_eq!(star.ports.to_mesos_string(), "[31000-32000]");
        assert_eq!(
            r.0["slave_public"].ports.to_mesos_string(),
            "[80-80, 443-443]"
        );
        assert_eq!(r.total().cpus, 3.0);
    }

    #[test]
    fn rejects_bad_resources() {
        assert!(Resources::parse("cpus:x").is_err());
        assert!(Resources::parse("ports:[5-1]").is_err());
        assert!(Resources::parse("gpus:1").is_err());
    }

    #[test]
    fn removing_ports_splits_ranges() {
        let r = Ranges(vec![(31000, 32000)]).without(&[31903, 31000]);
        assert_eq!(r.to_mesos_string(), "[31001-31902, 31904-32000]");
        assert!(r.contains(31001) && !r.contains(31903));
        assert_eq!(Ranges(vec![(7, 7)]).random(), Some(7));
        assert_eq!(Ranges::default().random(), None);
    }

    #[test]
    fn attributes_are_text_or_scalar() {
        let a = parse_attributes("env:staging;weight:3").unwrap();
        assert_eq!(
            attributes_json(&a),
            json!({"env": "staging", "weight": 3.0})
        );
    }
}
