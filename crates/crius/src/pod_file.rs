//! A PodSandboxConfig from a JSON file as people write them for crictl: any field may be left
//! out (it takes its zero value, a message its absence) and keys may be snake_case or the
//! protobuf JSON camelCase.

use k8s_cri::v1 as cri;
use serde_json::{Map, Value};

pub fn parse(text: &str) -> anyhow::Result<cri::PodSandboxConfig> {
    let given: Value = serde_json::from_str(text)?;
    if !given.is_object() {
        anyhow::bail!("a PodSandboxConfig is a JSON object");
    }
    let template = serde_json::to_value(full_template())?;
    Ok(serde_json::from_value(fill(given, &template, "")?)?)
}

/// Every nested message present (and one element of each repeated message), so that a message
/// the file gives in part has the defaults of its other fields.
fn full_template() -> cri::PodSandboxConfig {
    let security_context = cri::LinuxSandboxSecurityContext {
        namespace_options: Some(Default::default()),
        selinux_options: Some(Default::default()),
        run_as_user: Some(Default::default()),
        run_as_group: Some(Default::default()),
        seccomp: Some(Default::default()),
        apparmor: Some(Default::default()),
        ..Default::default()
    };
    cri::PodSandboxConfig {
        metadata: Some(Default::default()),
        dns_config: Some(Default::default()),
        port_mappings: vec![Default::default()],
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(security_context),
            overhead: Some(Default::default()),
            resources: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `given` completed from `template`: a field it leaves out is the template's zero value (a
/// nested message, which has fields in the template, is absent instead). A key the message does
/// not have is refused with its path (the generated types would drop it silently).
fn fill(given: Value, template: &Value, path: &str) -> anyhow::Result<Value> {
    Ok(match (given, template) {
        (Value::Object(given), Value::Object(fields)) if !fields.is_empty() => {
            let mut given: Map<String, Value> = given.into_iter().map(|(k, v)| (snake_case(&k), v)).collect();
            if let Some(unknown) = given.keys().find(|k| !fields.contains_key(*k)) {
                anyhow::bail!("{path}{unknown} is not a field of the PodSandboxConfig (see the CRI's api.proto)");
            }
            let mut out = Map::new();
            for (key, field) in fields {
                let value = match given.remove(key) {
                    Some(v) => fill(v, field, &format!("{path}{key}."))?,
                    None => zero(field),
                };
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        (Value::Array(items), Value::Array(element)) if element.len() == 1 => {
            Value::Array(items.into_iter().map(|v| fill(v, &element[0], path)).collect::<anyhow::Result<_>>()?)
        }
        (given, _) => given,
    })
}

fn zero(field: &Value) -> Value {
    match field {
        Value::Object(fields) if !fields.is_empty() => Value::Null,
        Value::Array(_) => Value::Array(Vec::new()),
        other => other.clone(),
    }
}

fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_in_either_case_take_defaults() {
        let config = parse(
            r#"{"metadata":{"name":"web","namespace":"default","uid":"u1"},
                "logDirectory":"/tmp/logs",
                "port_mappings":[{"container_port":80,"hostPort":8080}],
                "linux":{"cgroup_parent":"/kubepods","security_context":{"namespace_options":{"network":2}}}}"#,
        )
        .unwrap();
        let md = config.metadata.unwrap();
        assert_eq!((md.name.as_str(), md.uid.as_str(), md.attempt), ("web", "u1", 0));
        assert_eq!(config.log_directory, "/tmp/logs");
        assert_eq!((config.port_mappings[0].container_port, config.port_mappings[0].host_port), (80, 8080));
        assert!(config.dns_config.is_none() && config.labels.is_empty() && config.hostname.is_empty());
        let linux = config.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods");
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.namespace_options.unwrap().network, 2);
        assert!(sc.run_as_user.is_none(), "a message left out stays absent");
        assert!(linux.overhead.is_none());
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        assert!(parse(r#"{"metadata":{"name":"web"},"nonsense":1}"#).unwrap_err().to_string().contains("nonsense"));
        let err = parse(r#"{"linux":{"security_context":{"privileged":true,"runAsUsr":{}}}}"#).unwrap_err();
        assert!(err.to_string().contains("linux.security_context.run_as_usr"), "{err}");
        assert!(parse(r#"{"hostname":3}"#).is_err());
        assert!(parse("[]").is_err());
    }
}
